"""Reading a range of a topic directly (no consumer group), for the offset ledger."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from acct2crm.app.ledger import RangeRead
from acct2crm.model.message import Message


class RangeReader:
    def __init__(
        self, bootstrap: str, poll_ms: int = 2000, security: Mapping[str, Any] | None = None
    ) -> None:
        self._bootstrap = bootstrap
        self._poll_ms = poll_ms
        self._security = dict(security or {})  # kafka_security.aiokafka_options

    def _consumer(self) -> AIOKafkaConsumer:
        # "none": a seek below the log start raises instead of jumping to the end,
        # which would look like a range read to its end with nothing in it
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="none",
            **self._security,
        )

    async def earliest(self, topic: str, partition: int) -> int:
        consumer = self._consumer()
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            offsets = await consumer.beginning_offsets([tp])
            return int(offsets[tp])
        finally:
            await consumer.stop()

    async def read(self, topic: str, partition: int, start: int, end: int) -> RangeRead:
        """Messages with offsets in [start, end), in order, and how far the read got.

        One empty poll ends the read early; the ledger asks again for the rest.
        """
        consumer = self._consumer()
        await consumer.start()
        out: list[Message] = []
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            reached = start
            while reached < end:
                batch = await consumer.getmany(tp, timeout_ms=self._poll_ms)
                records = batch.get(tp, [])
                if not records:
                    break  # not there (yet): the caller retries what is missing
                for record in records:
                    if start <= record.offset < end:
                        out.append(
                            Message(topic, partition, record.offset, record.key, record.value)
                        )
                # the consumer's position also steps over offsets holding no record
                reached = max(records[-1].offset + 1, await consumer.position(tp))
            return RangeRead(out, reached)
        finally:
            await consumer.stop()
