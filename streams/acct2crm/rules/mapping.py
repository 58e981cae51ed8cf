"""Field mapping (docs/rules.md, "Field mapping"): which CRM field gets what.

The mapping is data, parsed from the operator's TOML file and handed to the
pure rules: it computes an intent's fields from a row, names the fields sales
own after creation (never written by an update), and names the accounting
columns whose change is worth a CRM call. The default mapping is the
contract's: each CRM field from the column of the same name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from acct2crm.errors import ConfigError
from acct2crm.rules.change import MAPPED_FIELDS, UNAVAILABLE, Row
from acct2crm.rules.codes import clean_text

ACCOUNTING_COLUMNS: tuple[str, ...] = (
    "id",
    "code",
    "name",
    "tax_code",
    "address",
    "phone",
    "email",
    "contact_name",
    "branch_code",
    "is_customer",
    "is_vendor",
    "updated_at",
)
"""The columns of ``accounting.customer`` (docs/contract.md)."""

CRM_FIELDS: tuple[str, ...] = MAPPED_FIELDS
"""The fields the CRM's customer API accepts (docs/contract.md)."""

CODE_FIELD = "code"
"""The CRM field codes are matched on (R1/R2): it must come from a column."""

TRANSFORMS: tuple[str, ...] = ("strip", "upper", "lower", "phone_digits")

_NON_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True)
class FieldRule:
    """One CRM field: its source (a column or a constant), a transform, who owns it."""

    field: str
    column: str | None = None
    constant: str | None = None
    transform: str | None = None
    create_only: bool = False  # sales own it once created: updates never write it

    def value(self, row: Row) -> str | None:
        """The value the CRM gets, NFC and stripped; empty is null."""
        if self.column is None:
            raw: Any = self.constant
        else:
            raw = row.get(self.column)
        if raw is None:
            return None
        text = clean_text(raw if isinstance(raw, str) else str(raw))
        if text is None or self.transform in (None, "strip"):
            return text
        if self.transform == "upper":
            return text.upper()
        if self.transform == "lower":
            return text.lower()
        return _NON_DIGITS.sub("", text) or None  # phone_digits

    def describe(self, *, redact: bool = False) -> str:
        """One line; ``redact`` leaves a constant's text out (logs carry no values)."""
        constant = "a constant" if redact else f"constant {self.constant!r}"
        source = f"column {self.column}" if self.column is not None else constant
        parts = [f"{self.field} <- {source}"]
        if self.transform is not None:
            parts.append(f"transform {self.transform}")
        parts.append("create only" if self.create_only else "create and update")
        return "; ".join(parts)


def _known(rule: FieldRule, row: Row) -> bool:
    """A constant is always known; a column only when the row has it."""
    return rule.column is None or rule.column in row


@dataclass(frozen=True)
class FieldMapping:
    """CRM fields from a row; ``change_columns`` ``None`` means every column counts."""

    rules: tuple[FieldRule, ...]
    change_columns: frozenset[str] | None = None

    # read for every change: worked out once per mapping (the mapping is immutable)
    @cached_property
    def code_rule(self) -> FieldRule:
        return next(r for r in self.rules if r.field == CODE_FIELD)

    @cached_property
    def code_column(self) -> str:
        return next(r.column for r in self.rules if r.field == CODE_FIELD and r.column)

    @cached_property
    def source_columns(self) -> frozenset[str]:
        return frozenset(r.column for r in self.rules if r.column is not None)

    @cached_property
    def create_only(self) -> frozenset[str]:
        return frozenset(r.field for r in self.rules if r.create_only)

    def fields(self, row: Row) -> dict[str, str | None]:
        """Every mapped field whose source column is known in ``row``.

        A column missing from ``row`` (Debezium could not read it) leaves its
        field out, so nothing is written to it; constants are always known.
        """
        return {r.field: r.value(row) for r in self.rules if _known(r, row)}

    def code_field(self, row: Row) -> str | None:
        """The code as ``fields(row)`` has it, without working out the other fields
        (an outcome needs the code alone)."""
        rule = self.code_rule
        return rule.value(row) if _known(rule, row) else None

    def code(self, row: Row | None) -> str | None:
        """The row's code as the CRM receives it, or ``None``."""
        if row is None:
            return None
        raw = row.get(self.code_column)
        if raw == UNAVAILABLE or not isinstance(raw, str):
            return None
        return self.code_rule.value(row)

    def changed(self, before: Row, after: Row) -> bool:
        """Whether a column that counts as a change differs; a TOAST placeholder never does."""
        columns = self.change_columns
        if columns is None:
            return True
        for column in columns:
            value = after.get(column)
            if value != UNAVAILABLE and value != before.get(column):
                return True
        return False

    def describe(self, *, redact: bool = False) -> list[str]:
        lines = [rule.describe(redact=redact) for rule in self.rules]
        watched = (
            "every column"
            if self.change_columns is None
            else ", ".join(sorted(self.change_columns))
        )
        lines.append(f"changes counted in: {watched}")
        return lines


DEFAULT_MAPPING = FieldMapping(rules=tuple(FieldRule(f, column=f) for f in CRM_FIELDS))


def parse_mapping(data: Mapping[str, Any]) -> FieldMapping:
    """Build a mapping from the operator's file contents, refusing what it cannot mean.

    ``[[field]]`` entries: ``crm`` (a CRM field), one of ``column`` or
    ``constant``, optional ``transform`` and ``create_only``. ``change_columns``
    (optional) defaults to the mapped columns.
    """
    unknown = set(data) - {"field", "change_columns"}
    if unknown:
        raise ConfigError(
            f"mapping: unknown keys {sorted(unknown)}; use [[field]] and change_columns"
        )
    entries = data.get("field")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("mapping: no [[field]] entries; each names a CRM field and its source")
    rules: list[FieldRule] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        rule = _parse_rule(entry, number)
        if rule.field in seen:
            raise ConfigError(f"mapping: two sources for CRM field {rule.field!r}")
        seen.add(rule.field)
        rules.append(rule)
    code = next((r for r in rules if r.field == CODE_FIELD), None)
    if code is None or code.column is None:
        raise ConfigError(
            f"mapping: CRM field {CODE_FIELD!r} must come from a column: codes are how "
            "accounting customers are matched to CRM records (R1/R2)"
        )
    if code.create_only:
        raise ConfigError(
            f"mapping: CRM field {CODE_FIELD!r} cannot be create_only: a renamed code must follow"
        )
    mapped = frozenset(r.column for r in rules if r.column is not None)
    raw_changes = data.get("change_columns")
    if raw_changes is None:
        changes = mapped
    else:
        if not isinstance(raw_changes, list) or not all(isinstance(c, str) for c in raw_changes):
            raise ConfigError("mapping: change_columns must be a list of accounting columns")
        for column in raw_changes:
            _check_column(column, "change_columns")
        changes = frozenset(raw_changes)
    return FieldMapping(rules=tuple(rules), change_columns=changes | {code.column})


def _parse_rule(entry: Any, number: int) -> FieldRule:
    where = f"mapping: [[field]] #{number}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = set(entry) - {"crm", "column", "constant", "transform", "create_only"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    crm = entry.get("crm")
    if not isinstance(crm, str) or crm not in CRM_FIELDS:
        raise ConfigError(
            f"{where}: unknown CRM field {crm!r}; the CRM has {', '.join(CRM_FIELDS)}"
        )
    where = f"mapping: CRM field {crm!r}"
    column, constant = entry.get("column"), entry.get("constant")
    if column is not None and constant is not None:
        raise ConfigError(f"{where}: two sources (column and constant); give one")
    if column is None and constant is None:
        raise ConfigError(f"{where}: no source; give a column or a constant")
    if column is not None:
        _check_column(column, where)
    if constant is not None and not isinstance(constant, str):
        raise ConfigError(f"{where}: constant must be text")
    transform = entry.get("transform")
    if transform is not None and transform not in TRANSFORMS:
        raise ConfigError(
            f"{where}: unknown transform {transform!r}; use one of {', '.join(TRANSFORMS)}"
        )
    create_only = entry.get("create_only", False)
    if not isinstance(create_only, bool):
        raise ConfigError(f"{where}: create_only must be true or false")
    return FieldRule(crm, column, constant, transform, create_only)


def _check_column(column: Any, where: str) -> None:
    if not isinstance(column, str) or column not in ACCOUNTING_COLUMNS:
        raise ConfigError(
            f"{where}: unknown column {column!r}; accounting.customer has "
            f"{', '.join(ACCOUNTING_COLUMNS)}"
        )
