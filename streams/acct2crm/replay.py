"""``acct2crm replay``: re-read the change topic from an offset or a time.

Replaying is safe by design: the worker remembers, per row, the position of
the last change it applied, so re-read changes that were already applied
write nothing. A dry run shows what re-reading would do without moving the
worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from acct2crm.debezium import decode_change
from acct2crm.errors import DecodeError, StackError
from acct2crm.kafka_io import consumer, flush, producer, read_range, read_table
from acct2crm.kafka_security import client_config
from acct2crm.mapping_file import read_mapping
from acct2crm.model.keys import offset_key, row_key
from acct2crm.records.avro import avro_type
from acct2crm.rules.change import Position
from acct2crm.rules.decide import Outcome, classify
from acct2crm.scope_file import read_scope
from acct2crm.settings import Settings
from acct2crm.task_progress import Tracker
from acct2crm.tenants import read_registry

WORKER_GROUP = "acct2crm"
POSITIONS_CHANGELOG = f"{WORKER_GROUP}-row_to_position-changelog"
LEDGER_CHANGELOG = f"{WORKER_GROUP}-topic_offsets-changelog"


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds from an ISO 8601 time (UTC if no zone) or a number of ms."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise StackError(f"not a time: {text!r} (use ISO 8601, e.g. 2026-11-29T08:00)") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def offset_for(settings: Settings, from_offset: int | None, from_timestamp: str | None) -> int:
    c = consumer(settings, "acct2crm-cli-replay")
    try:
        low, high = c.get_watermark_offsets(TopicPartition(settings.change_topic, 0), timeout=10)
        if from_timestamp is not None:
            ms = parse_timestamp(from_timestamp)
            [found] = c.offsets_for_times([TopicPartition(settings.change_topic, 0, ms)], 10)
            return high if found.offset < 0 else found.offset
        assert from_offset is not None
        if not low <= from_offset <= high:
            raise StackError(f"offset {from_offset} is outside the topic's range {low}..{high}")
        return from_offset
    except KafkaException as exc:
        raise StackError(f"cannot read offsets of {settings.change_topic}: {exc}") from exc
    finally:
        c.close()


def applied_positions(settings: Settings) -> dict[str, int]:
    """The worker's per-row positions (LSN), read back from its table's changelog."""
    table = read_table(settings, POSITIONS_CHANGELOG, "position")
    return {key: int(value["lsn"]) for key, value in table.items()}


@dataclass(frozen=True)
class Preview:
    offset: int
    op: str
    code: str | None
    would: str


def dry_run(settings: Settings, start: int, tracker: Tracker | None = None) -> Iterator[Preview]:
    registry = read_registry(settings)  # every tenant's changes share the topic
    scopes = {t.id: read_scope(t.scope_file) for t in registry}
    mapping = read_mapping(settings.effective_mapping_file)

    def tenant_of(database: str) -> str | None:
        found = registry.by_database(database)
        return found.id if found is not None else None

    positions = applied_positions(settings)
    for offset, key, value in read_range(settings, settings.change_topic, start):
        if tracker is not None:
            tracker.update(completed=offset + 1 - start)
        try:
            change = decode_change(key, value, tenant=settings.tenant, offset=offset,
                                   tenant_of=tenant_of)
        except DecodeError as exc:
            yield Preview(offset, "?", None, f"failed: {exc}")
            continue
        if change is None:
            continue
        row = change.accounting_id
        lsn = None if row is None else positions.get(row_key(change.tenant, row))
        decided = classify(
            change, scopes[change.tenant], Position(lsn) if lsn is not None else None,
            mapping=mapping,
        )
        if isinstance(decided, Outcome):
            yield Preview(
                offset, change.op.value, decided.code, f"{decided.action}: {decided.reason}"
            )
        else:
            yield Preview(offset, change.op.value, decided.code, "sent to the CRM sink (R1/R2)")


def worker_group_active(settings: Settings) -> bool:
    admin = AdminClient(client_config(settings))
    try:
        [future] = admin.describe_consumer_groups([WORKER_GROUP]).values()
        description = future.result(timeout=10)
    except KafkaException:
        return False
    return bool(description.members)


def rewind(settings: Settings, start: int) -> None:
    """Move the worker back to ``start`` on the change topic (the worker must be stopped).

    Both the consumer group's committed offset and the worker's own offset
    ledger (a table, restored from its changelog at start) are moved.
    """
    if worker_group_active(settings):
        raise StackError("the worker is running: stop it before rewinding (acct2crm down)")
    c = consumer(settings, WORKER_GROUP)
    try:
        c.commit(offsets=[TopicPartition(settings.change_topic, 0, start)], asynchronous=False)
    except KafkaException as exc:
        raise StackError(f"cannot move the worker to offset {start}: {exc}") from exc
    finally:
        c.close()
    p = producer(settings)
    key = json.dumps(offset_key(settings.change_topic, 0)).encode()
    value = avro_type("table_offset").encode({"offset": start - 1})
    p.produce(LEDGER_CHANGELOG, key=key, value=value)
    flush(p)
