"""The newest value of a few keys of a compacted topic, read from its end.

A table's changelog is compacted only once its segment rolls, so it can hold
a record per update: the worker's offset ledger gets one per handled
message. Reading it from the start to learn two keys is a scan of the whole
history; reading back from the end in windows stops as soon as every wanted
key was seen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from acct2crm.errors import StackError
from acct2crm.kafka_security import client_config
from acct2crm.result_index import ReadStats
from acct2crm.settings import Settings

WINDOW = 2_000


def latest_values(
    settings: Settings,
    topic: str,
    keys: Collection[Any],
    decode: Callable[[bytes], Any],
    *,
    parse_key: Callable[[bytes | None], Any] = lambda key: key,
    stats: ReadStats | None = None,
    timeout_s: float = 5.0,
    partition: int = 0,
) -> dict[Any, Any]:
    """key -> decoded newest value for each of ``keys`` found (a tombstone removes it),
    read from ``partition`` of ``topic`` (none found if the topic has no such partition).

    ``parse_key`` turns a message's key into the form ``keys`` are given in.
    """
    stats = stats if stats is not None else ReadStats()
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"acct2crm-tail-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,  # each window is a seek: see result_index.py
                "log_level": 0,
            },
        )
    )
    found: dict[Any, Any] = {}
    seen: set[Any] = set()
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None or partition not in metadata.partitions:
            return {}
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                   timeout=timeout_s)
        end = high
        while end > low and not set(keys) <= seen:
            start = max(low, end - WINDOW)
            newest: dict[Any, bytes | None] = {}
            consumer.assign([TopicPartition(topic, partition, start)])
            position = start
            while position < end:
                message = consumer.poll(timeout_s)
                if message is None:
                    break
                if message.error():
                    continue
                stats.messages += 1
                position = int(message.offset() or 0) + 1
                key = parse_key(message.key())
                if key in keys and key not in seen and position - 1 < end:
                    newest[key] = message.value()
            for key, value in newest.items():
                seen.add(key)
                if value is not None:
                    found[key] = decode(value)
            end = start
        return found
    except KafkaException as exc:
        raise StackError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()
