"""How far the sync has got: counts per action, lag, last failures, history of a code.

Read from Kafka itself (the results topic and the worker's offset ledger), so
the figures are right even when the worker is stopped or was restarted. The
results are not scanned per call: the result index (result_index.py) catches
up with the topic's new tail and answers from there; the ledger is read back
from its end (tail_read.py).
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    TopicPartition,
)

from acct2crm import result_index
from acct2crm.errors import DecodeError, StackError
from acct2crm.kafka_io import json_or_none
from acct2crm.kafka_security import client_config
from acct2crm.model.keys import offset_key
from acct2crm.records.avro import avro_type, result_type
from acct2crm.records.convert import result_as_json
from acct2crm.rules.codes import code_key
from acct2crm.settings import Settings
from acct2crm.tail_read import latest_values

log = logging.getLogger(__name__)

WORKER_GROUP = "acct2crm"
LAST_FAILURES = 10


@dataclass
class SyncProgress:
    lag: int = 0  # changes captured but not yet applied or failed; -1 when Kafka is unreachable
    counts: dict[str, int] = field(default_factory=dict)
    last_failures: list[dict[str, Any]] = field(default_factory=list)
    results_seen: int = 0


def _consumer(settings: Settings, group: str | None = None) -> Consumer:
    return Consumer(
        client_config(settings) | {
            "group.id": group or f"acct2crm-status-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "socket.timeout.ms": 5000,
            "session.timeout.ms": 6000,
            "log_level": 0,
        }
    )


def iter_results(settings: Settings, timeout_s: float = 5.0) -> Iterator[dict[str, Any]]:
    """Every result record from the start of the results topic up to now."""
    consumer = _consumer(settings)
    try:
        tp = TopicPartition(settings.results_topic, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
        if high <= low:
            return
        consumer.assign([TopicPartition(settings.results_topic, 0, OFFSET_BEGINNING)])
        position = low
        while position < high:
            message = consumer.poll(timeout_s)
            if message is None:
                break
            if message.error():
                continue
            position = int(message.offset() or 0) + 1
            try:
                yield result_as_json(result_type().decode(message.value() or b""))
            except DecodeError:
                continue
    finally:
        consumer.close()


LEDGER_CHANGELOG = f"{WORKER_GROUP}-topic_offsets-changelog"


def handled_offsets(
    settings: Settings, stats: result_index.ReadStats | None = None
) -> dict[str, int]:
    """The worker's offset ledger (last offset handled) for every partition of the change
    and command topics; each partition's entries are in that partition of the ledger's
    changelog (the tables are co-partitioned with the topics)."""
    codec = avro_type("table_offset")
    table: dict[str, Any] = {}
    for partition in range(settings.change_partitions):
        keys = [offset_key(topic, partition)
                for topic in (settings.change_topic, settings.commands_topic)]
        try:
            table |= latest_values(settings, LEDGER_CHANGELOG, keys, codec.decode,
                                   parse_key=json_or_none, stats=stats, partition=partition)
        except (StackError, DecodeError):
            continue  # the worker has not run yet
    return {k: int(v["offset"]) for k, v in table.items()}


def lag(
    settings: Settings, timeout_s: float = 5.0, stats: result_index.ReadStats | None = None
) -> int:
    """Messages on the change and command topics the worker has not handled yet."""
    return sum(high - done for done, high in _unhandled(settings, timeout_s, stats).values())


def _unhandled(
    settings: Settings, timeout_s: float = 5.0, stats: result_index.ReadStats | None = None
) -> dict[tuple[str, int], tuple[int, int]]:
    """Per input topic partition: (first offset not handled yet, end offset)."""
    ledger = handled_offsets(settings, stats)
    consumer = _consumer(settings, WORKER_GROUP)
    try:
        found = {}
        for topic in (settings.change_topic, settings.commands_topic):
            for partition in range(settings.change_partitions):  # one ledger entry each
                tp = TopicPartition(topic, partition)
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
                last = ledger.get(offset_key(topic, partition))
                done = last + 1 if last is not None else low
                found[(topic, partition)] = (min(done, high), high)
        return found
    finally:
        consumer.close()


def oldest_unapplied_ms(settings: Settings, timeout_s: float = 5.0) -> dict[str, int]:
    """Per input topic with a backlog: when its oldest unhandled message was written (ms)."""
    found: dict[str, int] = {}
    consumer = _consumer(settings)
    try:
        for (topic, partition), (done, high) in _unhandled(settings, timeout_s).items():
            if done >= high:
                continue
            consumer.assign([TopicPartition(topic, partition, done)])
            message = consumer.poll(timeout_s)
            if message is None or message.error():
                continue
            kind, stamp = message.timestamp()
            if kind != TIMESTAMP_NOT_AVAILABLE:  # the oldest over the topic's partitions
                found[topic] = min(int(stamp), found.get(topic, int(stamp)))
    finally:
        consumer.close()
    return found


def retention_warning(
    topic: str, age_ms: int, retention_ms: int, warn_ratio: float
) -> str | None:
    """A warning when the oldest unapplied message of ``topic`` nears its deletion.

    Kafka deletes by age whether or not the worker has read a message, so a
    CRM outage longer than a finite retention loses queued changes (R4).
    """
    if retention_ms < 0 or age_ms < warn_ratio * retention_ms:
        return None
    left_ms = retention_ms - age_ms
    when = (
        f"Kafka may delete it in {_duration(left_ms)}" if left_ms > 0
        else "Kafka may already have deleted unapplied changes"
    )
    return (
        f"retention: the oldest unapplied message on {topic} is {_duration(age_ms)} old, "
        f"{age_ms / retention_ms:.0%} of the topic's retention ({_duration(retention_ms)}); "
        f"{when}. Bring the CRM back or raise retention.ms (setting topic_retention_ms)"
    )


def _duration(ms: int) -> str:
    seconds = max(0, ms) // 1000
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest % 60}s"


def sync_progress(
    settings: Settings, stats: result_index.ReadStats | None = None
) -> SyncProgress:
    progress = SyncProgress()
    try:
        progress.lag = lag(settings, stats=stats)
        try:
            result_index.catch_up(settings, stats)
            progress.counts = result_index.counts(settings)
            progress.last_failures = result_index.last_failures(settings, LAST_FAILURES, stats)
        except (sqlite3.Error, OSError) as exc:  # no index here (read-only home): scan
            log.warning("result index unusable (%s); reading the whole results topic", exc)
            _scan_progress(settings, progress)
        progress.results_seen = sum(progress.counts.values())
    except (KafkaException, StackError):
        progress.lag = -1
    return progress


def tenant_counts(
    settings: Settings, stats: result_index.ReadStats | None = None, *, kafka: bool = True
) -> dict[str, dict[str, int]]:
    """Results per tenant and action, from the result index (its new tail read first;
    ``kafka=False``: as far as it was indexed, for a Kafka that does not answer)."""
    try:
        if kafka:
            result_index.catch_up(settings, stats)
        return result_index.counts_by_tenant(settings)
    except (sqlite3.Error, OSError) as exc:  # no index here (read-only home): scan
        log.warning("result index unusable (%s); reading the whole results topic", exc)
    found: dict[str, dict[str, int]] = {}
    if not kafka:
        return found
    for record in iter_results(settings):
        actions = found.setdefault(str(record.get("tenant")), {})
        actions[record["action"]] = actions.get(record["action"], 0) + 1
    return found


def _scan_progress(settings: Settings, progress: SyncProgress) -> None:
    counts: dict[str, int] = {}
    failures: list[dict[str, Any]] = []
    for record in iter_results(settings):
        counts[record["action"]] = counts.get(record["action"], 0) + 1
        if record["action"] == "failed":
            failures.append(record)
            del failures[:-LAST_FAILURES]
    progress.counts, progress.last_failures = counts, failures


def code_history(
    settings: Settings, code: str, stats: result_index.ReadStats | None = None
) -> list[dict[str, Any]]:
    """The results about one customer code (the newest ones), in the order they were
    applied: a backfill or a re-drive shows when it was done, not at its change's place."""
    try:
        result_index.catch_up(settings, stats)
        offsets = result_index.code_offsets(settings, code)
        found = list(result_index.read_results(settings, offsets, stats))
    except (sqlite3.Error, OSError) as exc:  # no index here (read-only home): scan
        log.warning("result index unusable (%s); reading the whole results topic", exc)
        key = code_key(code)
        found = [r for r in iter_results(settings) if r.get("code") and code_key(r["code"]) == key]
    found.sort(key=lambda r: (r["applied_at"], (r.get("source") or {}).get("lsn") or 0))
    return found
