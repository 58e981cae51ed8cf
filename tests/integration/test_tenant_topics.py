"""A kept stack's one-partition topics grow to change_partitions only when that keeps
order: nothing left for the worker group to read, and no connector writing with the
old routing."""

from __future__ import annotations

import secrets

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from acct2crm import topic_partitions
from acct2crm.errors import StackError
from acct2crm.kafka_io import admin_client
from acct2crm.settings import Settings
from acct2crm.topic_partitions import WORKER_GROUP
from acct2crm.topics import ensure_topics

pytestmark = pytest.mark.integration


def _partitions(settings: Settings, topic: str) -> int:
    found = admin_client(settings).list_topics(topic=topic, timeout=10).topics[topic]
    return len(found.partitions)


def test_old_topics_grow_only_when_drained_and_connect_stopped(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = secrets.token_hex(4)
    group = f"{WORKER_GROUP}-{tag}"  # the stack's worker is a live member of the real one
    monkeypatch.setattr(topic_partitions, "WORKER_GROUP", group)
    old = stack_settings.model_copy(update={
        "topic_prefix": f"t{tag}", "commands_topic": f"t{tag}.commands",
        "results_topic": f"t{tag}.results", "dlq_topic": f"t{tag}.dlq",
    })
    admin = admin_client(old)
    futures = admin.create_topics(
        [NewTopic(old.change_topic, 1, 1), NewTopic(old.commands_topic, 1, 1)]
    )
    for future in futures.values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": old.kafka_bootstrap})
    producer.produce(old.change_topic, b"{}")
    producer.flush(10)

    grown = old.model_copy(update={"change_partitions": 4})
    with pytest.raises(StackError, match="not handled"):
        ensure_topics(grown)
    assert _partitions(old, old.change_topic) == 1

    consumer = Consumer({"bootstrap.servers": old.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(old.change_topic, 0, 1)], asynchronous=False)
    consumer.close()
    with pytest.raises(StackError, match="Kafka Connect runs"):
        ensure_topics(grown)  # the test stack's Connect is up

    stopped = grown.model_copy(update={"connect_url": "http://127.0.0.1:9"})
    created = ensure_topics(stopped)
    assert _partitions(old, old.change_topic) == 4
    assert _partitions(old, old.commands_topic) == 4
    changelogs = topic_partitions.changelog_topics()  # this test's group, not the stack's
    assert set(created) == {old.results_topic, old.dlq_topic, *changelogs}
    assert _partitions(old, old.results_topic) == 1
    assert {_partitions(old, name) for name in changelogs} == {4}
    admin.delete_topics(
        [old.change_topic, old.commands_topic, old.results_topic, old.dlq_topic, *changelogs]
    )
