"""``acct2crm backfill``: apply R1 to every in-scope row that exists now.

Rows that existed before the connector started are left alone by default
(docs/rules.md: created when next edited). On request, this reads them in one
consistent snapshot and sends them to the sink as inserts at the lowest
position there is (``BACKFILL_POSITION``), below every live change:

- a live change of the row applied before the backfill command makes the
  backfill a replay (the CRM already has that row or a newer state of it);
- a live change after it always wins, even one whose transaction was open
  while the snapshot was read: its WAL record may sit below the WAL position
  the snapshot saw, yet it commits later (the position the snapshot read was
  used here before, and such an edit was dropped as a replay);
- a second backfill is a replay of the first and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from acct2crm.crm.client import CrmClient
from acct2crm.errors import StackError
from acct2crm.kafka_io import flush, producer
from acct2crm.mapping_file import read_mapping
from acct2crm.model.crm import CrmRecord
from acct2crm.model.keys import row_key
from acct2crm.records.avro import command_type
from acct2crm.records.convert import command_record
from acct2crm.rules.change import Action, Change, Op, Position
from acct2crm.rules.codes import code_key
from acct2crm.rules.decide import Outcome, SyncIntent, classify, decide, replay_reason
from acct2crm.scope_file import read_scope
from acct2crm.settings import Settings
from acct2crm.task_progress import Tracker
from acct2crm.tenants import Tenant, read_registry
from acct2crm.topic_partitions import commands_partitions

COLUMNS = (
    "id, code, name, tax_code, address, phone, email, contact_name, branch_code, "
    "is_customer, is_vendor"
)


BACKFILL_POSITION = Position(lsn=0)
"""Below every live change: a backfilled row never hides a commit (module docstring)."""


def parse_lsn(text: str) -> int:
    """PostgreSQL's ``X/Y`` LSN as the integer Debezium reports."""
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def tenant_of(settings: Settings, tenant_id: str | None) -> Tenant:
    """The tenant a backfill reads and writes for: its database, CRM account and scope
    (default: the settings' own tenant). A name no tenant has is refused."""
    return read_registry(settings).require(settings.tenant if tenant_id is None else tenant_id)


def snapshot_rows(settings: Settings, tenant: Tenant) -> tuple[int, list[dict[str, Any]]]:
    """Every accounting row, read in one snapshot, and the position to send them at."""
    try:
        with psycopg.connect(settings.postgres_conninfo(tenant.database),
                             row_factory=dict_row) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM accounting.customer ORDER BY id"  # noqa: S608
                ).fetchall()
    except psycopg.Error as exc:
        raise StackError(f"cannot read the accounting table: {exc}") from exc
    return BACKFILL_POSITION.lsn, rows


@dataclass
class BackfillPlan:
    intents: list[SyncIntent] = field(default_factory=list)
    outcomes: list[tuple[dict[str, Any], Outcome]] = field(default_factory=list)


def plan(settings: Settings, tenant: Tenant, lsn: int, rows: list[dict[str, Any]]
         ) -> BackfillPlan:
    scope = read_scope(tenant.scope_file)
    mapping = read_mapping(settings.effective_mapping_file)
    result = BackfillPlan()
    for row in rows:
        change = Change(
            tenant=tenant.id,
            op=Op.SNAPSHOT,
            accounting_id=row["id"],
            before=None,
            after=row,
            position=Position(lsn=lsn),
        )
        decided = classify(change, scope, snapshot_as_insert=True, mapping=mapping)
        if isinstance(decided, SyncIntent):
            result.intents.append(decided)
        else:
            result.outcomes.append((row, decided))
    return result


def send(settings: Settings, intents: list[SyncIntent], tracker: Tracker | None = None) -> int:
    """The intents as commands, into their tenant's partition, in row order."""
    partitions = commands_partitions(settings, {i.tenant for i in intents})
    p = producer(settings)
    codec = command_type()
    for intent in intents:
        p.produce(
            settings.commands_topic,
            key=str(intent.accounting_id).encode(),
            value=codec.encode(command_record(intent, None)),
            partition=partitions[intent.tenant],
        )
        p.poll(0)
        if tracker is not None:
            tracker.advance()
    flush(p)
    return len(intents)


async def _crm_view(settings: Settings, tenant: Tenant) -> dict[str, CrmRecord]:
    crm = CrmClient.connect(
        tenant.crm_url,
        tenant.crm_token.get_secret_value(),
        allow_insecure_http=settings.crm_allow_insecure_http,
    )
    try:
        return {code_key(r.code): r async for r in crm.iter_all()}
    finally:
        await crm.aclose()


def synced_at(intent: SyncIntent, applied: Mapping[str, int]) -> int | None:
    """The LSN the worker synced this row at, when a backfill of it is a replay (the
    sink then leaves it as it is, whatever the CRM holds); None otherwise."""
    lsn = applied.get(row_key(intent.tenant, intent.accounting_id))
    return lsn if lsn is not None and intent.position.lsn <= lsn else None


def dry_run(
    settings: Settings, tenant: Tenant, intents: list[SyncIntent], applied: Mapping[str, int]
) -> Iterator[tuple[SyncIntent, Action, str]]:
    """What R1 would do for each row, as the sink would: a row the worker synced already
    (``applied``: its per-row positions) is a replay, any other is decided against the
    CRM as it is now. Writes nothing."""
    view = asyncio.run(_crm_view(settings, tenant))
    for intent in intents:
        lsn = synced_at(intent, applied)
        if lsn is not None:
            yield intent, Action.UNCHANGED, f"{replay_reason(lsn)}; nothing written"
            continue
        decision = decide(intent, {k: view.get(k) for k in intent.code_keys()})
        yield intent, decision.action, decision.reason
