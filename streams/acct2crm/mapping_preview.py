"""``acct2crm mapping preview CODE``: what the CRM would receive for a row now.

Reads the row from PostgreSQL and applies the mapping in force, without
touching Kafka or the CRM, so an operator can check an edit of the mapping
file before the next change of that customer is synced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from acct2crm.errors import StackError
from acct2crm.rules.mapping import ACCOUNTING_COLUMNS, FieldMapping
from acct2crm.settings import Settings


@dataclass(frozen=True)
class FieldPreview:
    field: str
    value: str | None
    create_only: bool


def read_row(settings: Settings, code: str, code_column: str) -> dict[str, Any] | None:
    """The accounting row whose code matches ``code`` as codes match (case, spaces)."""
    query = sql.SQL(
        "SELECT {columns} FROM accounting.customer "
        "WHERE lower(btrim({code})) = lower(btrim(%s)) ORDER BY id LIMIT 1"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in ACCOUNTING_COLUMNS),
        code=sql.Identifier(code_column),
    )
    try:
        with psycopg.connect(settings.postgres_conninfo(), row_factory=dict_row) as conn:
            return conn.execute(query, (code,)).fetchone()
    except psycopg.Error as exc:
        raise StackError(f"cannot read the accounting table: {exc}") from exc


def preview(mapping: FieldMapping, row: dict[str, Any]) -> list[FieldPreview]:
    """Each mapped CRM field and the value it would get, in the mapping's order."""
    fields = mapping.fields(row)
    return [
        FieldPreview(rule.field, fields.get(rule.field), rule.create_only)
        for rule in mapping.rules
    ]
