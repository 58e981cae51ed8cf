"""Reading Debezium's change envelopes (JSON converter) into ``Change`` values.

Pure: bytes in, ``Change`` out. Messages that are not row changes (tombstones,
heartbeats, schema-change events) decode to ``None`` so the caller can pass
them by; anything unreadable raises ``DecodeError`` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from acct2crm.errors import DecodeError
from acct2crm.rules.change import Change, Op, Position

TenantOf = Callable[[str], str | None]


def decode_change(
    key: bytes | None,
    value: bytes | None,
    *,
    tenant: str,
    offset: int | None = None,
    tenant_of: TenantOf | None = None,
) -> Change | None:
    """Decode one message of the change topic; ``None`` for non-changes.

    Every tenant's changes share the change topic: with ``tenant_of`` (the
    registry's database -> tenant id) the tenant is the one whose database
    Debezium names in ``source.db``; without it, ``tenant``."""
    if value is None or value == b"":
        return None  # tombstone: carries no change
    try:
        doc = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"change message is not JSON: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise DecodeError(f"change message is a JSON {type(doc).__name__}, not an object")
    envelope = doc.get("payload", doc) if "schema" in doc else doc
    if not isinstance(envelope, Mapping):
        raise DecodeError("change message payload is not an object")
    if "op" not in envelope:
        if "databaseName" in envelope or "ddl" in envelope or set(envelope) <= {"ts_ms"}:
            return None  # schema change or heartbeat
        raise DecodeError("change message has no 'op': not a Debezium change envelope")
    try:
        op = Op(envelope["op"])
    except ValueError as exc:
        raise DecodeError(f"unknown Debezium op {envelope['op']!r}") from exc
    if op is Op.BACKFILL:
        raise DecodeError("op 'b' is acct2crm's own and cannot come from Debezium")
    before = _row(envelope.get("before"), "before")
    after = _row(envelope.get("after"), "after")
    source = envelope.get("source") or {}
    if not isinstance(source, Mapping):
        raise DecodeError("change message 'source' is not an object")
    lsn = source.get("lsn")
    if not isinstance(lsn, int):
        raise DecodeError("change message has no integer source.lsn")
    if tenant_of is not None:
        tenant = _tenant(source, tenant_of)
    accounting_id = _accounting_id(key, before, after)
    if op in (Op.CREATE, Op.UPDATE, Op.SNAPSHOT) and after is None:
        raise DecodeError(f"op={op.value} change has no 'after' row")
    return Change(
        tenant=tenant,
        op=op,
        accounting_id=accounting_id,
        before=before,
        after=after,
        position=Position(
            lsn=lsn, tx_id=_int_or_none(source.get("txId")), ts_ms=_int_or_none(source.get("ts_ms"))
        ),
        offset=offset,
    )


def _tenant(source: Mapping[str, Any], tenant_of: TenantOf) -> str:
    database = source.get("db")
    if not isinstance(database, str):
        raise DecodeError("change message has no source.db: its tenant is unknown")
    found = tenant_of(database)
    if found is None:
        raise DecodeError(f"change from database {database!r}, which no tenant names")
    return found


def _row(value: Any, name: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DecodeError(f"change message '{name}' is not an object")
    return value


def _accounting_id(
    key: bytes | None, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> int | None:
    for row in (after, before):
        if row is not None and isinstance(row.get("id"), int):
            return int(row["id"])
    if key:
        try:
            doc = json.loads(key)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        if isinstance(doc, Mapping):
            doc = doc.get("payload", doc)
            if isinstance(doc, Mapping) and isinstance(doc.get("id"), int):
                return int(doc["id"])
    return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None
