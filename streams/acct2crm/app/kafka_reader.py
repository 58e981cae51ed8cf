"""Reading a range of a topic directly (no consumer group), for the offset ledger."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from acct2crm.app.pipeline import Message


class RangeReader:
    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
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

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        """Messages with offsets in [start, end), in order."""
        consumer = self._consumer()
        await consumer.start()
        out: list[Message] = []
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            while not out or out[-1].offset is None or out[-1].offset < end - 1:
                batch = await consumer.getmany(tp, timeout_ms=2000)
                records = batch.get(tp, [])
                if not records:
                    break  # the range is gone (retention) or not there yet
                for record in records:
                    if start <= record.offset < end:
                        out.append(
                            Message(topic, partition, record.offset, record.key, record.value)
                        )
            return out
        finally:
            await consumer.stop()
