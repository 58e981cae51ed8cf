"""Our own record of which offsets the worker has handled, per topic partition.

Faust's consumer can, around a restart or rebalance, hand an agent a message
twice or skip one while still committing past it (faust-streaming issues
#596 and #606; both seen here under SIGKILL tests). Order and "nothing lost"
are this product's core, so the agents do not trust the delivery: each
message is checked against the last offset handled. An offset already
handled is a duplicate and is dropped; a jump forward is a gap, and the
missing messages are read from Kafka directly and handled first, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from acct2crm.app.pipeline import Message

log = logging.getLogger(__name__)

SEP = "\x1f"

# (topic, partition, first offset, end offset exclusive) -> the messages in that range
RangeReader = Callable[[str, int, int, int], Awaitable[list[Message]]]
# (topic, partition) -> the earliest offset still on the topic
EarliestOffset = Callable[[str, int], Awaitable[int]]


def ledger_key(topic: str, partition: int) -> str:
    return f"{topic}{SEP}{partition}"


class OffsetLedger:
    def __init__(
        self,
        table: MutableMapping[str, Any],
        read_range: RangeReader,
        earliest: EarliestOffset,
    ) -> None:
        self._table = table
        self._read_range = read_range
        self._earliest = earliest

    async def admit(self, messages: Sequence[Message]) -> list[Message]:
        """The messages to handle, in offset order: duplicates dropped, gaps filled."""
        admitted: list[Message] = []
        expected: dict[tuple[str, int], int] = {}
        for message in sorted(messages, key=lambda m: (m.topic, m.partition or 0, m.offset or 0)):
            if message.offset is None:
                admitted.append(message)
                continue
            tp = (message.topic, message.partition or 0)
            if tp not in expected:
                last = _offset(self._table.get(ledger_key(*tp)))
                expected[tp] = last + 1 if last is not None else await self._earliest(*tp)
            nxt = expected[tp]
            if message.offset < nxt:
                log.info("offset %s of %s was already handled; dropped", message.offset, tp)
                continue
            if message.offset > nxt:
                log.warning(
                    "offsets %s..%s of %s were skipped by the consumer; reading them first",
                    nxt, message.offset - 1, tp,
                )
                admitted += await self._read_range(tp[0], tp[1], nxt, message.offset)
            admitted.append(message)
            expected[tp] = message.offset + 1
        return admitted

    def handled(self, messages: Sequence[Message]) -> None:
        """Remember the highest offset handled per partition (after the work is done)."""
        highest: dict[str, int] = {}
        for message in messages:
            if message.offset is None:
                continue
            key = ledger_key(message.topic, message.partition or 0)
            highest[key] = max(highest.get(key, -1), message.offset)
        for key, offset in highest.items():
            self._table[key] = {"offset": offset}  # schemas/table_offset.avsc


    # the agents call these: if the ledger cannot do its job, the messages are
    # still handled (idempotent by position) and the agent never crashes over it
    async def admit_or_pass(self, messages: Sequence[Message]) -> list[Message]:
        try:
            return await self.admit(messages)
        except Exception:
            log.exception("offset ledger unavailable; handling %d message(s) as delivered",
                          len(messages))
            return list(messages)

    def handled_or_log(self, messages: Sequence[Message]) -> None:
        try:
            self.handled(messages)
        except Exception:
            log.exception("could not record handled offsets; they may be handled again")


def _offset(value: Any) -> int | None:
    if value is None:
        return None
    return int(value["offset"]) if isinstance(value, dict) else int(value)
