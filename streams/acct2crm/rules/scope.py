"""Sync scope (docs/rules.md, "Sync scope"): which rows the operator has set up to sync.

The scope is data (parsed from the operator's TOML file) and ``in_scope`` is a
pure test on a row, so a scope change applies to the next change decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from acct2crm.errors import ConfigError
from acct2crm.rules.change import MAPPED_FIELDS, Row
from acct2crm.rules.codes import clean_text

_OPERATORS = ("eq", "ne", "in", "not_in", "present", "absent", "startswith")
_COLUMNS = ("id", *MAPPED_FIELDS, "is_customer", "is_vendor")


@dataclass(frozen=True)
class Condition:
    """One extra predicate on a column; all conditions of a scope must hold."""

    column: str
    op: str
    value: Any = None

    def holds(self, row: Row) -> bool:
        raw = row.get(self.column)
        actual = clean_text(raw) if isinstance(raw, str) else raw
        if self.op == "present":
            return actual is not None
        if self.op == "absent":
            return actual is None
        if self.op == "eq":
            return bool(actual == self.value)
        if self.op == "ne":
            return bool(actual != self.value)
        if self.op == "in":
            return actual in self.value
        if self.op == "not_in":
            return actual not in self.value
        return isinstance(actual, str) and actual.startswith(str(self.value))


@dataclass(frozen=True)
class SyncScope:
    """Branches synced (``None`` = all), customers only, extra conditions."""

    branches: frozenset[str] | None = None
    customers_only: bool = True
    conditions: tuple[Condition, ...] = field(default_factory=tuple)

    def contains(self, row: Row) -> bool:
        if self.customers_only and row.get("is_customer") is not True:
            return False
        if self.branches is not None:
            branch = clean_text(row.get("branch_code"))
            if branch is None or branch.casefold() not in self._branch_keys:
                return False
        # most scopes have no conditions: no generator made for them, once a change
        return not self.conditions or all(condition.holds(row) for condition in self.conditions)

    @cached_property
    def _branch_keys(self) -> frozenset[str]:
        """The branches compared without case, built once rather than for every row."""
        return frozenset(b.casefold() for b in self.branches or ())

    def describe(self) -> str:
        branches = "all branches" if self.branches is None else ", ".join(sorted(self.branches))
        parts = [branches, "customers only" if self.customers_only else "customers and vendors"]
        parts += [f"{c.column} {c.op} {c.value!r}" for c in self.conditions]
        return "; ".join(parts)


DEFAULT_SCOPE = SyncScope()


def parse_scope(data: Mapping[str, Any]) -> SyncScope:
    """Build a scope from the operator's file contents, refusing what it cannot mean."""
    unknown = set(data) - {"branches", "customers_only", "where"}
    if unknown:
        raise ConfigError(f"scope: unknown keys {sorted(unknown)}")
    branches_raw = data.get("branches")
    branches: frozenset[str] | None = None
    if branches_raw is not None and branches_raw != "all":
        if not isinstance(branches_raw, list) or not all(isinstance(b, str) for b in branches_raw):
            raise ConfigError('scope: "branches" must be a list of branch codes or "all"')
        branches = frozenset(b.strip() for b in branches_raw if b.strip())
    customers_only = data.get("customers_only", True)
    if not isinstance(customers_only, bool):
        raise ConfigError('scope: "customers_only" must be true or false')
    conditions = []
    for item in data.get("where", []):
        if not isinstance(item, Mapping):
            raise ConfigError('scope: each "where" entry must be a table')
        column, op = item.get("column"), item.get("op", "eq")
        if column not in _COLUMNS:
            raise ConfigError(f"scope: unknown column {column!r} in where")
        if op not in _OPERATORS:
            raise ConfigError(f"scope: unknown operator {op!r}; use one of {', '.join(_OPERATORS)}")
        value = item.get("value")
        if op in ("in", "not_in") and not isinstance(value, list):
            raise ConfigError(f"scope: operator {op!r} needs a list value")
        conditions.append(Condition(column=column, op=op, value=value))
    return SyncScope(branches=branches, customers_only=customers_only, conditions=tuple(conditions))


def scope_to_data(scope: SyncScope) -> dict[str, Any]:
    """The inverse of ``parse_scope``, for the CLI that edits the file."""
    data: dict[str, Any] = {"customers_only": scope.customers_only}
    data["branches"] = "all" if scope.branches is None else sorted(scope.branches)
    if scope.conditions:
        data["where"] = [
            {"column": c.column, "op": c.op, **({} if c.value is None else {"value": c.value})}
            for c in scope.conditions
        ]
    return data
