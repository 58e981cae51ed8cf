"""The ledger's read-back against the real broker, on a scratch topic.

A seek below the log start used to jump to the end (``auto_offset_reset``)
and come back empty, and the ledger moved past the gap as if it were read.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from acct2crm.app.kafka_reader import RangeReader
from acct2crm.app.ledger import LostRange, OffsetLedger, ledger_key
from acct2crm.kafka_security import aiokafka_options, client_config
from acct2crm.model.message import Message
from acct2crm.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_topic(stack_settings: Settings) -> str:
    """A new topic holding offsets 0..9, whose offsets 0..5 were then deleted."""
    admin = AdminClient(client_config(stack_settings))
    name = f"acct2crm-test-ledger-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    producer = Producer(client_config(stack_settings, acks="all"))
    for n in range(10):
        producer.produce(name, key=b"k", value=f"v{n}".encode())
    assert producer.flush(30) == 0
    admin.delete_records([TopicPartition(name, 0, 6)])[TopicPartition(name, 0, 6)].result(30)
    return name


async def test_a_gap_below_the_log_start_is_reported_and_the_rest_read(
    stack_settings: Settings, scratch_topic: str
) -> None:
    reader = RangeReader(
        stack_settings.kafka_bootstrap, poll_ms=500, security=aiokafka_options(stack_settings)
    )
    assert await reader.earliest(scratch_topic, 0) == 6
    with pytest.raises(Exception):  # noqa: B017 - aiokafka's out-of-range error, not a jump
        await reader.read(scratch_topic, 0, 2, 8)
    reported: list[LostRange] = []

    async def report(gone: LostRange) -> None:
        reported.append(gone)

    table = {ledger_key(scratch_topic, 0): {"offset": 1}}
    ledger = OffsetLedger(table, reader.read, reader.earliest, report_lost=report)
    admitted = await ledger.admit([Message(scratch_topic, 0, 9, b"k", b"v9")])
    assert [(m.offset, m.value) for m in admitted] == [(6, b"v6"), (7, b"v7"), (8, b"v8"),
                                                         (9, b"v9")]
    assert reported == [LostRange(scratch_topic, 0, 2, 6)]
