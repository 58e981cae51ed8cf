"""`acct2crm scope show|set`: the operator's way to change which rows are synced."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from acct2crm.cli import app
from acct2crm.scope_file import read_scope
from acct2crm.settings import reset_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith("ACCT2CRM_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ACCT2CRM_HOME", str(tmp_path))
    reset_settings()
    yield tmp_path
    reset_settings()


def scope(*args: str) -> Result:
    return CliRunner().invoke(app, ["scope", *args])


def test_set_keeps_what_it_is_not_told_and_show_says_it(home: Path) -> None:
    path = home / "scope.toml"
    path.write_text('branches = ["HN"]\ncustomers_only = true\n'
                    '[[where]]\ncolumn = "tax_code"\nop = "present"\n')
    done = scope("set", "--customers-and-vendors")
    assert done.exit_code == 0, done.output
    kept = read_scope(path)
    assert kept.branches == frozenset({"HN"}) and not kept.customers_only
    assert len(kept.conditions) == 1  # the where condition it cannot express stays
    assert "in force:" in scope("show").output


def test_a_broken_file_is_refused_with_the_way_out_and_replace_rewrites_it(home: Path) -> None:
    path = home / "scope.toml"
    path.write_text("branches = 5\n")
    refused = scope("set", "--branches", "all")
    assert refused.exit_code == 1
    assert '"branches" must be a list of branch codes or "all"' in refused.output
    assert "acct2crm scope set --replace" in refused.output
    assert path.read_text() == "branches = 5\n"  # nothing written over it
    done = scope("set", "--replace", "--branches", "HN,HCM")
    assert done.exit_code == 0, done.output
    fixed = read_scope(path)
    assert fixed.branches == frozenset({"HN", "HCM"}) and fixed.customers_only  # defaults
