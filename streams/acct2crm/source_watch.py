"""Is the accounting database still the history the per-row positions were taken from?

Positions (WAL LSNs) only compare within one continuous history. A new
PostgreSQL cluster, a restored backup or a lost replication slot starts
another one: LSNs go back or leave a hole, and every later change of a row
synced before would count as a replay and be dropped. Three checks:

- the cluster's system identifier (``pg_control_system()``), recorded on a
  compacted topic when the connector is first applied (a new cluster has
  another one);
- the replication slot: missing, or ``wal_status = lost`` (PostgreSQL gave
  it up at ``max_slot_wal_keep_size``), means changes were not captured;
- in the stream, a change at or below a row's last position whose commit
  time is later than that position's (``rules.resets``): such a change is
  held back as ``failed`` (and dead-lettered) instead of dropped as a replay.

``acct2crm positions rebase`` is the way out: it forgets the positions taken
before the reset and records the current identity as the new baseline.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from psycopg.rows import dict_row

from acct2crm.errors import StackError
from acct2crm.kafka_io import admin_client, flush, producer, read_range
from acct2crm.settings import Settings
from acct2crm.tenants import Tenant

HEARTBEAT_STALE_S = 120.0
"""Connect's heartbeat rewrites acct2crm.heartbeat every 10 s; this much silence is news."""


# ------------------------------------------------------------------ pure checks


@dataclass(frozen=True)
class SlotState:
    name: str
    exists: bool
    active: bool = False
    wal_status: str | None = None  # reserved | extended | unreserved | lost
    safe_wal_size: int | None = None  # bytes of WAL left before the slot is given up
    reading_since: datetime | None = None  # its reader's connection start, where visible


@dataclass(frozen=True)
class SourceReading:
    """What the accounting database says now (``None`` fields: not answered)."""

    system_identifier: str | None
    slot: SlotState | None
    heartbeat_at: datetime | None
    recorded_system_identifier: str | None


def findings(reading: SourceReading, now: datetime) -> list[str]:
    """Warnings an operator must see on ``status``; empty when the source is sound."""
    found: list[str] = []
    recorded, current = reading.recorded_system_identifier, reading.system_identifier
    if recorded is not None and current is not None and recorded != current:
        found.append(
            f"source reset: the accounting database is another PostgreSQL cluster "
            f"(system identifier {current}, positions were taken on {recorded}); "
            "changes of rows synced before are held back: run `acct2crm positions rebase`"
        )
    slot = reading.slot
    if slot is not None and not slot.exists:
        found.append(
            f"replication slot {slot.name} is missing: changes made while it was gone "
            "were not captured; recreate it (`acct2crm connectors restart`) and run "
            "`acct2crm backfill`"
        )
    elif slot is not None and slot.wal_status == "lost":
        found.append(
            f"replication slot {slot.name} was given up by PostgreSQL "
            "(max_slot_wal_keep_size): changes were lost; recreate the slot and run "
            "`acct2crm backfill`"
        )
    elif slot is not None and slot.wal_status == "unreserved":
        found.append(
            f"replication slot {slot.name} is about to be given up "
            f"({slot.safe_wal_size or 0} bytes of WAL left): is Connect reading?"
        )
    if reading.heartbeat_at is not None:
        # a reader that attached since the last beat has not had its turn to beat yet
        since = reading.heartbeat_at
        if slot is not None and slot.active and slot.reading_since is not None:
            since = max(since, slot.reading_since)
        silent = (now - reading.heartbeat_at).total_seconds()
        if (now - since).total_seconds() > HEARTBEAT_STALE_S:
            found.append(
                f"no Debezium heartbeat for {silent:.0f}s: Connect is not reading the "
                "accounting database; its WAL piles up in the slot"
            )
    return found


# ------------------------------------------------------------------ reading it


def read_database(settings: Settings) -> tuple[str | None, SlotState | None, datetime | None]:
    """System identifier, slot state and last heartbeat; ``None`` for what did not answer.

    Each is asked apart (autocommit), so a role that may not read one still gets the others.
    The slot's reader is Connect's walsender, another role's session: its start
    time is visible only to a role with ``pg_read_all_stats`` (the local stack
    grants it), and reads as NULL otherwise.
    """
    try:
        with psycopg.connect(
            settings.postgres_conninfo(), connect_timeout=3, autocommit=True,
            row_factory=dict_row,
        ) as conn:
            ident = _one(conn, "SELECT system_identifier::text AS id FROM pg_control_system()")
            row = _one(
                conn,
                "SELECT s.active, s.wal_status, s.safe_wal_size, a.backend_start "
                "FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid "
                "WHERE s.slot_name = %s",
                (settings.pg_slot,),
                missing={},
            )
            beat = _one(conn, "SELECT beat_at FROM acct2crm.heartbeat WHERE id = 1")
    except psycopg.Error:
        return None, None, None
    slot = None
    if row is not None:
        slot = SlotState(
            name=settings.pg_slot,
            exists=bool(row),
            active=bool(row.get("active")),
            wal_status=row.get("wal_status"),
            safe_wal_size=row.get("safe_wal_size"),
            reading_since=row.get("backend_start"),
        )
    return (
        ident["id"] if ident else None,
        slot,
        beat["beat_at"] if beat else None,
    )


def _one(
    conn: psycopg.Connection[dict[str, Any]],
    query: str,
    params: tuple[Any, ...] = (),
    missing: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The first row; ``missing`` when there is none, ``None`` when the query is refused."""
    try:
        row = conn.execute(query, params).fetchone()
    except psycopg.Error:
        return None
    return row if row is not None else missing


def current_system_identifier(settings: Settings) -> str:
    ident, _, _ = read_database(settings)
    if ident is None:
        raise StackError("cannot read the accounting database's system identifier")
    return ident


def source_topic(settings: Settings) -> str:
    return f"{settings.topic_prefix}.source"


def recorded_identity(settings: Settings) -> str | None:
    """The system identifier the positions were taken on (last record for the tenant)."""
    found: str | None = None
    try:
        for _, key, value in read_range(settings, source_topic(settings), 0):
            if key != settings.tenant.encode() or value is None:
                continue
            try:
                found = str(json.loads(value)["system_identifier"])
            except (ValueError, KeyError, TypeError):
                continue
    except StackError:
        return None  # topic not there yet: nothing recorded
    return found


def record_identity(settings: Settings, system_identifier: str) -> None:
    _ensure_source_topic(settings)
    p = producer(settings)
    body = {"system_identifier": system_identifier, "recorded_at": datetime.now(UTC).isoformat()}
    p.produce(source_topic(settings), key=settings.tenant.encode(), value=json.dumps(body).encode())
    flush(p)


def _ensure_source_topic(settings: Settings) -> None:
    admin = admin_client(settings)
    name = source_topic(settings)
    if name in admin.list_topics(timeout=15).topics:
        return
    topic = NewTopic(
        name, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"}
    )
    try:
        admin.create_topics([topic])[name].result(timeout=15)
    except KafkaException as exc:
        if "already exists" not in str(exc).lower():
            raise StackError(f"cannot create topic {name}: {exc}") from exc


def baseline(settings: Settings) -> str | None:
    """Record the source identity the first time; a warning when it changed since.

    Never fails the caller (``up``, ``connectors apply``): a database that will
    not say its identity only loses this check, and says so.
    """
    current, _, _ = read_database(settings)
    if current is None:
        return (
            "cannot read the accounting cluster's system identifier; "
            "a switch to another cluster would go unnoticed"
        )
    recorded = recorded_identity(settings)
    if recorded is None:
        record_identity(settings, current)
        return None
    if recorded != current:
        return findings(SourceReading(current, None, None, recorded), datetime.now(UTC))[0]
    return None


def read(settings: Settings, *, kafka: bool = True) -> SourceReading:
    """``kafka=False``: Kafka is known not to answer, so the recorded identity is not asked
    (each read would wait out its timeout) and the identity check is left out."""
    ident, slot, beat = read_database(settings)
    return SourceReading(ident, slot, beat, recorded_identity(settings) if kafka else None)


def _slot_json(slot: SlotState | None) -> dict[str, Any] | None:
    if slot is None:
        return None
    since = slot.reading_since
    return asdict(slot) | {"reading_since": since.isoformat() if since else None}


def report(settings: Settings, *, kafka: bool = True) -> dict[str, Any]:
    """The ``source`` part of ``status --json``."""
    reading = read(settings, kafka=kafka)
    return {
        "system_identifier": reading.system_identifier,
        "recorded_system_identifier": reading.recorded_system_identifier,
        "slot": _slot_json(reading.slot),
        "heartbeat_at": reading.heartbeat_at.isoformat() if reading.heartbeat_at else None,
        "warnings": findings(reading, datetime.now(UTC)),
    }


def tenant_report(settings: Settings, tenant: Tenant) -> dict[str, Any]:
    """Another tenant's database: its own slot and heartbeat, with the same warnings,
    each naming the tenant. Each tenant's connector reads its database through a slot
    of its own, so one tenant's reader can stop, or its slot near its end, alone.
    (The cluster's identity is the default tenant's check: positions rebase per cluster.)"""
    own = settings.model_copy(update={"pg_database": tenant.database, "pg_slot": tenant.slot})
    _, slot, beat = read_database(own)
    reading = SourceReading(None, slot, beat, None)
    return {
        "slot": _slot_json(slot),
        "heartbeat_at": beat.isoformat() if beat else None,
        "warnings": [f"tenant {tenant.id}: {found}"
                     for found in findings(reading, datetime.now(UTC))],
    }
