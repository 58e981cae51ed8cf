"""Small confluent-kafka helpers for the command line (not the worker's hot path)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from acct2crm.errors import DecodeError, StackError
from acct2crm.kafka_security import client_config
from acct2crm.records.avro import avro_type
from acct2crm.settings import Settings


def producer(settings: Settings) -> Producer:
    # log_level 3: librdkafka's retry warnings (a broker still loading its transaction
    # coordinator right after start) stay off the operator's terminal; a record Kafka
    # does not take is said by flush
    return Producer(client_config(settings, acks="all", log_level=3,
                                  **{"enable.idempotence": True}))


def admin_client(settings: Settings) -> AdminClient:
    # log_level 3 keeps librdkafka's connection-refused chatter off stderr
    return AdminClient(client_config(settings, log_level=3))


def flush(p: Producer, timeout_s: float = 30.0) -> None:
    if p.flush(timeout_s) > 0:
        raise StackError(f"Kafka did not take every message within {timeout_s:.0f}s")


def consumer(settings: Settings, group: str, **extra: Any) -> Consumer:
    return Consumer(
        client_config(
            settings, **{"group.id": group, "enable.auto.commit": False, "log_level": 0, **extra}
        )
    )


# Reading a large table's changelog back is bound by the fetches: 1.09M positions in
# 4 partitions took 10 s with librdkafka's 1 MiB a partition per fetch, 6.4 s with
# 10 MiB (measured on the bench stack; the change topic read as fast either way)
_FETCH_BYTES = 10 * 1024 * 1024


def read_range(
    settings: Settings, topic: str, start: int, end: int | None = None, timeout_s: float = 5.0,
    *, partition: int = 0,
) -> Iterator[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of one partition from ``start`` up to the current end."""
    c = consumer(settings, "acct2crm-cli-reader", **{"max.partition.fetch.bytes": _FETCH_BYTES})
    try:
        tp = TopicPartition(topic, partition)
        low, high = c.get_watermark_offsets(tp, timeout=timeout_s)
        stop = high if end is None else min(end, high)
        start = max(start, low)
        if start >= stop:
            return
        c.assign([TopicPartition(topic, partition, start)])
        while True:
            message = c.poll(timeout_s)
            if message is None:
                return
            if message.error():
                raise StackError(f"reading {topic}: {message.error()}")
            offset = int(message.offset() or 0)
            yield offset, message.key(), message.value()
            if offset + 1 >= stop:
                return
    except KafkaException as exc:
        raise StackError(f"reading {topic}: {exc}") from exc
    finally:
        c.close()


def _read_all_partitions(
    settings: Settings, topic: str
) -> Iterator[tuple[int, bytes | None, bytes | None]]:
    """Every partition of ``topic`` in turn (a table's changelog has one per partition)."""
    try:
        found = admin_client(settings).list_topics(topic=topic, timeout=5.0).topics.get(topic)
    except KafkaException as exc:
        raise StackError(f"reading {topic}: {exc}") from exc
    if found is None or (found.error is not None
                         and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        return  # not made yet (no worker ever ran): an empty table
    count = len(found.partitions) if found.partitions else 1
    for partition in range(count):
        yield from read_range(settings, topic, 0, partition=partition)


def json_or_none(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def read_table(settings: Settings, changelog: str, schema: str) -> dict[str, dict[str, Any]]:
    """A worker table as its changelog holds it now: JSON keys, Avro values."""
    avro = avro_type(schema)
    table: dict[str, dict[str, Any]] = {}
    for _, key, value in _read_all_partitions(settings, changelog):
        k = json_or_none(key)
        if not isinstance(k, str):
            continue
        if value is None:
            table.pop(k, None)
            continue
        try:
            table[k] = avro.decode(value)
        except DecodeError:
            continue  # a value from before the table was Avro-encoded
    return table
