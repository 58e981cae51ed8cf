"""Between the rules' values and the Avro records on Kafka."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from acct2crm.rules.change import Action, Op, Position
from acct2crm.rules.decide import SyncIntent


def now_ms() -> int:
    return time.time_ns() // 1_000_000  # a fifth of datetime's cost, once per record


def position_record(position: Position | None) -> dict[str, Any] | None:
    if position is None:
        return None
    return {"lsn": position.lsn, "tx_id": position.tx_id, "ts_ms": position.ts_ms}


def command_record(intent: SyncIntent, change_offset: int | None) -> dict[str, Any]:
    return {
        "tenant": intent.tenant,
        "accounting_id": intent.accounting_id,
        "op": intent.op.value,
        "code": intent.code,
        "previous_code": intent.previous_code,
        "fields": dict(intent.fields),
        "create_only": sorted(intent.create_only),
        "source": position_record(intent.position),
        "change_offset": change_offset,
        "decided_at": now_ms(),
    }


def intent_from_command(record: dict[str, Any]) -> SyncIntent:
    source = record["source"]
    return SyncIntent(
        tenant=record["tenant"],
        accounting_id=int(record["accounting_id"]),
        op=Op(record["op"]),
        code=record["code"],
        previous_code=record.get("previous_code"),
        fields=dict(record["fields"]),
        position=Position(lsn=source["lsn"], tx_id=source.get("tx_id"), ts_ms=source.get("ts_ms")),
        create_only=frozenset(record.get("create_only") or ()),
    )


def result_record(
    *,
    tenant: str,
    accounting_id: int | None,
    code: str | None,
    op: str,
    action: Action,
    reason: str,
    crm_id: int | None = None,
    position: Position | None = None,
) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "accounting_id": accounting_id,
        "code": code,
        "op": op,
        "action": action.value,
        "reason": reason,
        "crm_id": crm_id,
        "source": position_record(position),
        "applied_at": now_ms(),
    }


def dead_letter_record(
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
    error: str,
    reason: str,
    change_offset: int | None = None,
) -> dict[str, Any]:
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key,
        "value": value,
        "error": error,
        "reason": reason,
        "change_offset": change_offset,
        "failed_at": now_ms(),
    }


def result_as_json(record: dict[str, Any]) -> dict[str, Any]:
    """A decoded result in the JSON shape of docs/rules.md, "Results" (for status and the CLI)."""
    out = dict(record)
    applied = out.get("applied_at")
    if isinstance(applied, datetime):
        out["applied_at"] = applied.isoformat()
    return out
