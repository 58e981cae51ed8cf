"""The plain values the rules work on: a decoded change and its position."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Row = Mapping[str, Any]

UNAVAILABLE = "__debezium_unavailable_value"
"""Debezium's placeholder for a column it could not read (TOAST): means unchanged."""

MAPPED_FIELDS: tuple[str, ...] = (
    "code",
    "name",
    "tax_code",
    "address",
    "phone",
    "email",
    "contact_name",
    "branch_code",
)


class Op(StrEnum):
    """Debezium's operation codes, as read from the envelope's ``op``."""

    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    SNAPSHOT = "r"
    TRUNCATE = "t"
    BACKFILL = "b"  # ours: a row read by ``acct2crm backfill``, decided as an insert


class Action(StrEnum):
    """The result actions of docs/rules.md, "Results"."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED_DUPLICATE_CODE = "skipped_duplicate_code"
    IGNORED_DELETE = "ignored_delete"
    IGNORED_OUT_OF_SCOPE = "ignored_out_of_scope"
    IGNORED_SNAPSHOT = "ignored_snapshot"
    FAILED = "failed"


@dataclass(frozen=True, order=True)
class Position:
    """Where a change sits in the accounting database's commit history.

    ``lsn`` orders the changes of one row (a row's changes cannot interleave
    across transactions), which is all idempotence needs.
    """

    lsn: int
    tx_id: int | None = None
    ts_ms: int | None = None


@dataclass(frozen=True)
class Change:
    """One committed row change, decoded from the Debezium envelope."""

    tenant: str
    op: Op
    accounting_id: int | None
    before: Row | None
    after: Row | None
    position: Position
    offset: int | None = None  # where it sat on the change topic, for dead letters

    @property
    def external_ref(self) -> str:
        return external_ref(self.tenant, self.accounting_id)


def external_ref(tenant: str, accounting_id: int | None) -> str:
    """What the sync stamps on CRM records so it can recognise its own later."""
    return f"{tenant}:{accounting_id}"
