"""``acct2crm dlq list`` and ``dlq retry``: see the dead letters, and re-drive them.

A dead letter keeps the message that failed, but its payload is stale: the
accountant may have fixed the row since, or the CRM's validation changed.
So a re-drive never replays the payload. It reads the row as it is NOW in
accounting and sends it through the commands topic like any other change:
the sink decides again and publishes a new result.

It goes out at the position of the change that failed (its LSN), which keeps
it in order with live changes. Any later change of the row has a higher
position, so it is never taken for a replay, and if one was applied already
the re-drive is the replay and writes nothing (the CRM holds that newer
state). A second re-drive of the same letter is a replay of the first: it
writes nothing. A letter whose position is unknown goes out at position 0,
below every live change. (A read position such as ``pg_current_wal_lsn()``
would not do: an edit open while the row is read may have a lower WAL record
yet commit later, and would be dropped as a replay.)

What was re-driven is remembered on a compacted topic keyed by the dead
letter's offset (``<dlq topic>.redriven``): ``list`` shows it, and ``retry
--all`` leaves those letters alone.

Every tenant's dead letters share the topic. A letter belongs to the tenant
its command names, or whose database its change came from, and is decided
again from that tenant's database and scope: never another tenant's row of
the same id. A letter whose tenant the registry no longer has is not
re-driven.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from psycopg.rows import dict_row

from acct2crm.backfill import COLUMNS
from acct2crm.debezium import TenantOf, decode_change
from acct2crm.errors import DecodeError, StackError
from acct2crm.kafka_io import admin_client, flush, json_or_none, producer, read_range
from acct2crm.mapping_file import read_mapping
from acct2crm.records.avro import command_type, dead_letter_type, result_type
from acct2crm.records.convert import command_record, now_ms, result_record
from acct2crm.rules.change import Change, Op, Position
from acct2crm.rules.decide import Outcome, SyncIntent, classify
from acct2crm.scope_file import read_scope
from acct2crm.settings import Settings
from acct2crm.tenants import Tenant, read_registry
from acct2crm.topic_partitions import commands_partitions

INSERT_OPS = {"c", "b", "r"}  # a failed insert is decided again as one (R1), else as R2


@dataclass(frozen=True)
class DeadLetter:
    offset: int  # on the DLQ topic: what `retry --offset` names
    tenant: str
    accounting_id: int | None
    code: str | None
    op: str
    lsn: int | None  # position of the change that failed
    topic: str  # where the failed message came from
    error: str
    reason: str
    failed_at: str
    redriven: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def redriven_topic(settings: Settings) -> str:
    return f"{settings.dlq_topic}.redriven"


UNKNOWN_TENANT = "?"  # a change from a database no tenant names (any more)


def _describe(settings: Settings, offset: int, record: dict[str, Any],
              tenant_of: TenantOf | None = None) -> DeadLetter:
    """Who and what a dead letter is about, from the message it kept (best effort).
    ``tenant_of``: the registry's database -> tenant, for a change's letter."""
    tenant, accounting_id, code, op = settings.tenant, None, None, "?"
    lsn: int | None = None
    value: bytes | None = record.get("value")
    if record["topic"] == settings.commands_topic:
        try:
            command = command_type().decode(value or b"")
            tenant, accounting_id = str(command["tenant"]), int(command["accounting_id"])
            code, op = command.get("code"), str(command["op"])
            lsn = int(command["source"]["lsn"])
        except (DecodeError, KeyError, TypeError, ValueError):
            pass
    else:
        change = _kept_change(record.get("key"), value, settings, tenant_of)
        if change is not None:
            tenant = change.tenant
            accounting_id, op, lsn = change.accounting_id, change.op.value, change.position.lsn
            row = change.after or change.before or {}
            code = row.get("code") if isinstance(row.get("code"), str) else None
    failed = record.get("failed_at")
    return DeadLetter(
        offset=offset, tenant=tenant, accounting_id=accounting_id, code=code, op=op, lsn=lsn,
        topic=str(record["topic"]), error=str(record["error"]), reason=str(record["reason"]),
        failed_at=failed.isoformat() if isinstance(failed, datetime) else str(failed),
    )


def _kept_change(key: bytes | None, value: bytes | None, settings: Settings,
                 tenant_of: TenantOf | None) -> Change | None:
    """The change a letter kept, as the tenant of its database's; from a database no tenant
    names any more, as ``UNKNOWN_TENANT``'s (its row still listed); None if no change."""
    try:
        return decode_change(key, value, tenant=settings.tenant, tenant_of=tenant_of)
    except DecodeError:
        pass
    try:
        return decode_change(key, value, tenant=UNKNOWN_TENANT)
    except DecodeError:
        return None


def redriven(settings: Settings) -> dict[int, dict[str, Any]]:
    """DLQ offset -> what its last re-drive did."""
    found: dict[int, dict[str, Any]] = {}
    if redriven_topic(settings) not in admin_client(settings).list_topics(timeout=10).topics:
        return found
    for _, key, value in read_range(settings, redriven_topic(settings), 0):
        doc = json_or_none(key)
        if isinstance(doc, int):
            item = json_or_none(value)
            if isinstance(item, dict):
                found[doc] = item
    return found


def dead_letters(settings: Settings, tenant: str | None = None) -> list[DeadLetter]:
    done = redriven(settings)
    codec = dead_letter_type()
    tenant_of = read_registry(settings).tenant_of()
    letters = []
    for offset, _, value in read_range(settings, settings.dlq_topic, 0):
        try:
            letter = _describe(settings, offset, codec.decode(value or b""), tenant_of)
        except DecodeError:
            continue
        if tenant is None or letter.tenant == tenant:
            letters.append(replace(letter, redriven=done.get(offset)))
    return letters


@dataclass(frozen=True)
class Redrive:
    """What a re-drive does with one dead letter."""

    letter: DeadLetter
    what: str  # "sent to the sink ...", or the outcome decided without the CRM
    intent: SyncIntent | None = None
    outcome: Outcome | None = None


def _rows_now(settings: Settings, tenant: Tenant, ids: Iterable[int]
              ) -> dict[int, dict[str, Any]]:
    """The tenant's rows as they are now in its accounting database."""
    try:
        with psycopg.connect(settings.postgres_conninfo(tenant.database),
                             row_factory=dict_row) as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM accounting.customer WHERE id = ANY(%s)",  # noqa: S608
                (sorted(set(ids)),),
            ).fetchall()
    except psycopg.Error as exc:
        raise StackError(f"cannot read the accounting table: {exc}") from exc
    return {int(r["id"]): r for r in rows}


def plan(settings: Settings, letters: list[DeadLetter]) -> list[Redrive]:
    """Decide each letter again from its row's current state in its own tenant's
    database, with that tenant's scope and the field mapping (no CRM yet)."""
    registry = read_registry(settings)
    mapping = read_mapping(settings.effective_mapping_file)
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    scopes = {}
    for tenant_id in dict.fromkeys(x.tenant for x in letters):
        tenant = registry.get(tenant_id)
        if tenant is not None:
            ids = [x.accounting_id for x in letters if x.tenant == tenant_id and x.accounting_id]
            rows[tenant_id] = _rows_now(settings, tenant, ids)
            scopes[tenant_id] = read_scope(tenant.scope_file)
    planned = []
    for letter in letters:
        if letter.accounting_id is None:
            planned.append(Redrive(letter, "cannot re-drive: the letter names no accounting row"))
            continue
        if letter.tenant not in rows:
            planned.append(Redrive(letter, f"cannot re-drive: tenant {letter.tenant!r} is not "
                                   "in the tenants file (its database is unknown)"))
            continue
        row = rows[letter.tenant].get(letter.accounting_id)
        insert = letter.op in INSERT_OPS
        change = Change(
            tenant=letter.tenant,
            op=Op.DELETE if row is None else Op.CREATE if insert else Op.UPDATE,
            accounting_id=letter.accounting_id,
            before=None,
            after=row,
            position=Position(lsn=letter.lsn or 0),
        )
        decided = classify(change, scopes[letter.tenant], mapping=mapping)
        if isinstance(decided, SyncIntent):
            kind = "an insert (R1)" if insert else "an update (R2)"
            planned.append(Redrive(
                letter, f"sent to the sink as {kind} of the row as it is now", intent=decided
            ))
        else:
            planned.append(Redrive(letter, f"{decided.action.value}: {decided.reason}",
                                   outcome=decided))
    return planned


def choose(letters: list[DeadLetter], offsets: list[int] | None) -> list[DeadLetter]:
    """``--offset``s as given (re-driven before or not); ``--all``: those never re-driven."""
    if offsets is None:
        return [x for x in letters if x.redriven is None]
    by_offset = {x.offset: x for x in letters}
    unknown = sorted(set(offsets) - set(by_offset))
    if unknown:
        raise StackError(f"no dead letter at offset(s) {', '.join(map(str, unknown))}")
    return [by_offset[o] for o in sorted(set(offsets))]


def _ensure_redriven_topic(settings: Settings) -> None:
    admin = admin_client(settings)
    name = redriven_topic(settings)
    if name in admin.list_topics(timeout=10).topics:
        return
    topic = NewTopic(name, num_partitions=1, replication_factor=1,
                     config={"cleanup.policy": "compact"})
    try:
        admin.create_topics([topic])[name].result(30)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise StackError(f"cannot create topic {name}: {exc}") from exc


def send(settings: Settings, planned: list[Redrive]) -> list[Redrive]:
    """Send each re-drive (a command, or its result when decided without the CRM); remember it."""
    # every tenant's partition known before anything is sent: an unknown tenant sends nothing
    partitions = commands_partitions(
        settings, {item.intent.tenant for item in planned if item.intent is not None})
    _ensure_redriven_topic(settings)
    p = producer(settings)
    sent = []
    for item in planned:
        letter = item.letter
        if item.intent is not None:
            p.produce(
                settings.commands_topic,
                key=str(item.intent.accounting_id).encode(),
                value=command_type().encode(command_record(item.intent, None)),
                partition=partitions[item.intent.tenant],
            )
        elif item.outcome is not None:
            record = result_record(
                tenant=letter.tenant, accounting_id=letter.accounting_id,
                code=item.outcome.code, op=letter.op, action=item.outcome.action,
                reason=f"re-drive of dead letter {letter.offset}: {item.outcome.reason}",
            )
            key = (item.outcome.code or str(letter.accounting_id or "")).encode()
            p.produce(settings.results_topic, key=key or None,
                      value=result_type().encode(record))
        else:
            continue
        memo = {"at": now_ms(), "what": item.what}
        p.produce(redriven_topic(settings), key=json.dumps(letter.offset).encode(),
                  value=json.dumps(memo).encode())
        sent.append(item)
    flush(p)
    return sent
