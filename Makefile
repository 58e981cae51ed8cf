# acct2crm: install, demo, test, and the native local stack.
# `make test` is the project's test command (CI runs exactly that).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install system-deps venv jars demo lint test up down

## install: OS packages if missing, the virtualenv, the stack's jars (all idempotent)
install: system-deps venv jars

system-deps:
	@bash scripts/install-system-deps.sh

venv: $(VENV)/.installed

# the product (.) and the workbench (stack/: local stack, reference CRM), editable;
# reinstalled only when their dependencies change; pip's cache is reused
$(VENV)/.installed: pyproject.toml stack/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' -e ./stack
	@touch $@

# Maven resolves into ~/.m2 and the acct2crm jar cache; both are reused by later runs
jars: venv
	$(BIN)/python -m devstack.jars

demo: install
	$(BIN)/acct2crm demo

## lint: ruff and mypy --strict over the product, the workbench and the tests (a finding fails the build)
lint: venv
	$(BIN)/ruff check streams stack tests
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest

up: install
	$(BIN)/acct2crm up

down:
	@if [ -x $(BIN)/acct2crm ]; then $(BIN)/acct2crm down; else acct2crm down; fi
