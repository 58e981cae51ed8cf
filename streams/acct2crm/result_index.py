"""Counts and a code -> results index that follow the results topic.

``status`` and ``history`` used to read the whole results topic on every
call: minutes at a million results. The index is a small SQLite file under
the home folder that remembers how far it has read the topic, the counts per
tenant and action, the offsets of failed results and, per code, the offsets
of its results. Whoever reads it (the worker every second, or the command
line when the worker is down) first catches up with the topic's new tail
only; a history then reads just that code's offsets back from Kafka, so the
topic stays the one source of truth. Several writers are safe: each chunk is
written only if the index still ends where that writer started reading.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from acct2crm.errors import DecodeError, StackError
from acct2crm.kafka_security import client_config
from acct2crm.records.avro import result_type
from acct2crm.records.convert import result_as_json
from acct2crm.rules.codes import code_key
from acct2crm.settings import Settings

CHUNK = 20_000  # results written to the index per transaction
FIRST_CHUNK = 500
HISTORY_LIMIT = 500  # newest results a history shows per code

_SCHEMA = """
CREATE TABLE IF NOT EXISTS position (topic TEXT PRIMARY KEY, next_offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counts (
    tenant TEXT NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (tenant, action));
CREATE TABLE IF NOT EXISTS by_code (
    code_key TEXT NOT NULL, tenant TEXT NOT NULL, result_offset INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS by_code_key ON by_code (code_key, result_offset);
CREATE TABLE IF NOT EXISTS failures (
    result_offset INTEGER PRIMARY KEY, tenant TEXT NOT NULL);
"""


@dataclass
class ReadStats:
    """Messages read from Kafka by one call: what the tests hold the index to."""

    messages: int = 0


@dataclass(frozen=True)
class Indexed:
    """What the index needs of one result."""

    offset: int
    tenant: str
    action: str
    code: str | None


def index_path(settings: Settings) -> Path:
    return settings.home / "index" / "results.sqlite3"


def open_index(settings: Settings) -> sqlite3.Connection:
    path = index_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    _use_wal(db)
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


def _use_wal(db: sqlite3.Connection, attempts: int = 100) -> None:
    """WAL once per file (it stays); readers opening a new index together may find it
    locked while another switches it, and SQLite says so at once, without waiting."""
    for _ in range(attempts):
        try:
            mode = db.execute("PRAGMA journal_mode").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    db.execute("PRAGMA journal_mode=WAL")  # the last try says why it cannot


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        client_config(
            settings,
            **{
                "group.id": f"acct2crm-index-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "socket.timeout.ms": 5000,
                # a seek to the next run waits for the fetch in flight: keep that short
                "fetch.wait.max.ms": 10,
                "log_level": 0,
            },
        )
    )


def _next_offset(db: sqlite3.Connection, topic: str) -> int | None:
    row = db.execute("SELECT next_offset FROM position WHERE topic = ?", (topic,)).fetchone()
    return int(row[0]) if row else None


def _reset(db: sqlite3.Connection, topic: str, start: int) -> None:
    """The topic was recreated or its start deleted: index it again from ``start``."""
    db.execute("BEGIN IMMEDIATE")
    for table in ("counts", "by_code", "failures"):
        db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    db.execute("INSERT OR REPLACE INTO position VALUES (?, ?)", (topic, start))
    db.execute("COMMIT")


def _write_chunk(db: sqlite3.Connection, topic: str, start: int, end: int,
                 items: list[Indexed]) -> bool:
    """Add ``items`` (offsets start..end-1) unless another writer already did."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if _next_offset(db, topic) != start:
            db.execute("ROLLBACK")
            return False
        counts: dict[tuple[str, str], int] = {}
        for item in items:
            counts[(item.tenant, item.action)] = counts.get((item.tenant, item.action), 0) + 1
        db.executemany(
            "INSERT INTO counts VALUES (?, ?, ?) ON CONFLICT (tenant, action) "
            "DO UPDATE SET n = n + excluded.n",
            [(t, a, n) for (t, a), n in counts.items()],
        )
        db.executemany(
            "INSERT INTO by_code VALUES (?, ?, ?)",
            [(code_key(i.code), i.tenant, i.offset) for i in items if i.code],
        )
        db.executemany(
            "INSERT OR IGNORE INTO failures VALUES (?, ?)",
            [(i.offset, i.tenant) for i in items if i.action == "failed"],
        )
        db.execute("UPDATE position SET next_offset = ? WHERE topic = ?", (end, topic))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return True


def reader(settings: Settings) -> Consumer:
    """A consumer for ``catch_up`` to reuse (the worker's, called every second)."""
    return _consumer(settings)


def catch_up(
    settings: Settings,
    stats: ReadStats | None = None,
    timeout_s: float = 5.0,
    consumer: Consumer | None = None,
) -> int:
    """Index the results written since the last call; how many were added.

    ``consumer``: one from ``reader`` to reuse; left open. Else one is made and closed.
    """
    stats = stats if stats is not None else ReadStats()
    topic = settings.results_topic
    own = consumer is None
    with closing(open_index(settings)) as db:
        consumer = consumer if consumer is not None else _consumer(settings)
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
            start = _next_offset(db, topic)
            if start is None or start > high or start < low:
                _reset(db, topic, low)
                start = low
            if start >= high:
                return 0
            consumer.assign([TopicPartition(topic, 0, start)])
            added = 0
            items: list[Indexed] = []
            chunk_start = position = start
            chunk = FIRST_CHUNK  # small first: losing a race to another writer costs little
            while position < high:
                batch = consumer.consume(num_messages=min(chunk, high - position),
                                         timeout=timeout_s)
                if not batch:
                    break
                for message in batch:
                    if message.error():
                        continue
                    stats.messages += 1
                    position = int(message.offset() or 0) + 1
                    item = _indexed(position - 1, message.value())
                    if item is not None:
                        items.append(item)
                if position - chunk_start >= chunk or position >= high:
                    if not _write_chunk(db, topic, chunk_start, position, items):
                        return added  # another reader is indexing the same tail
                    added += len(items)
                    items, chunk_start = [], position
                    chunk = min(CHUNK, chunk * 4)
            if (items or chunk_start != position) and _write_chunk(
                db, topic, chunk_start, position, items
            ):
                added += len(items)
            return added
        except KafkaException as exc:
            raise StackError(f"cannot read {topic}: {exc}") from exc
        finally:
            if own:
                consumer.close()


def _indexed(offset: int, value: bytes | None) -> Indexed | None:
    try:
        record = result_type().decode(value or b"")
    except DecodeError:
        return None
    return Indexed(offset, str(record["tenant"]), str(record["action"]), record.get("code"))


def counts(settings: Settings, tenant: str | None = None) -> dict[str, int]:
    with closing(open_index(settings)) as db:
        if tenant is None:
            rows = db.execute("SELECT action, SUM(n) FROM counts GROUP BY action").fetchall()
        else:
            rows = db.execute(
                "SELECT action, n FROM counts WHERE tenant = ?", (tenant,)
            ).fetchall()
    return {str(action): int(n) for action, n in rows}


def counts_by_tenant(settings: Settings) -> dict[str, dict[str, int]]:
    """``{tenant: {action: n}}`` for every tenant the index has seen a result of."""
    with closing(open_index(settings)) as db:
        rows = db.execute("SELECT tenant, action, n FROM counts").fetchall()
    found: dict[str, dict[str, int]] = {}
    for tenant, action, n in rows:
        found.setdefault(str(tenant), {})[str(action)] = int(n)
    return found


def last_failures(settings: Settings, n: int, stats: ReadStats | None = None
                  ) -> list[dict[str, Any]]:
    with closing(open_index(settings)) as db:
        rows = db.execute(
            "SELECT result_offset FROM failures ORDER BY result_offset DESC LIMIT ?", (n,)
        ).fetchall()
    offsets = sorted(int(r[0]) for r in rows)
    return list(read_results(settings, offsets, stats))


def code_offsets(settings: Settings, code: str, limit: int = HISTORY_LIMIT) -> list[int]:
    with closing(open_index(settings)) as db:
        rows = db.execute(
            "SELECT result_offset FROM by_code WHERE code_key = ? "
            "ORDER BY result_offset DESC LIMIT ?",
            (code_key(code), limit),
        ).fetchall()
    return sorted(int(r[0]) for r in rows)


def read_results(settings: Settings, offsets: Iterable[int], stats: ReadStats | None = None,
                 timeout_s: float = 5.0) -> Iterator[dict[str, Any]]:
    """The result records at these offsets (sorted), reading runs of neighbours at once."""
    stats = stats if stats is not None else ReadStats()
    wanted = set(offsets)
    if not wanted:
        return
    consumer = _consumer(settings)
    topic = settings.results_topic
    try:
        for first, last in _runs(sorted(wanted)):
            consumer.assign([TopicPartition(topic, 0, first)])
            position = first
            while position <= last:
                message = consumer.poll(timeout_s)
                if message is None:
                    break  # deleted by retention since it was indexed
                if message.error():
                    continue
                stats.messages += 1
                position = int(message.offset() or 0) + 1
                if position - 1 not in wanted:
                    continue
                try:
                    yield result_as_json(result_type().decode(message.value() or b""))
                except DecodeError:
                    continue
    except KafkaException as exc:
        raise StackError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()


def _runs(offsets: list[int], gap: int = 8) -> Iterator[tuple[int, int]]:
    """Offsets grouped into ranges read in one pass (a small gap is cheaper than a seek)."""
    first = last = offsets[0]
    for offset in offsets[1:]:
        if offset - last > gap:
            yield first, last
            first = offset
        last = offset
    yield first, last
