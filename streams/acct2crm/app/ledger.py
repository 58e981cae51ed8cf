"""Our own record of which offsets the worker has handled, per topic partition.

Faust's consumer can, around a restart or rebalance, hand an agent a message
twice or skip one while still committing past it (faust-streaming issues
#596 and #606; both seen here under SIGKILL tests). Order and "nothing lost"
are this product's core, so the agents do not trust the delivery: each
message is checked against the last offset handled. An offset already
handled is a duplicate and is dropped; a jump forward is a gap, and the
missing messages are read from Kafka directly and handled first, in order.

A gap is read back completely or retried (with backoff, shown on the status
page) - never passed over. Only offsets below the log start (deleted by
retention) are passed, and never quietly: each such range is reported
(a failed result naming it, and the status page). Each range read back is
also reported to the consumer (``passed``): offsets it never handed to an
agent would otherwise hold its commits back until the next restart
(consumer_gaps.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from acct2crm.app.offset_window import OffsetWindow
from acct2crm.model.keys import offset_key, tenant_offset_key
from acct2crm.model.message import Message
from acct2crm.sink.pacing import RetryPolicy, WaitState

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RangeRead:
    """What one read of a range found; every offset below ``reached`` was read."""

    messages: list[Message]
    reached: int


@dataclass(frozen=True)
class LostRange:
    """Offsets ``first``..``end - 1`` that are gone from the topic and were never handled."""

    topic: str
    partition: int
    first: int
    end: int

    def describe(self) -> str:
        return (f"offsets {self.first}..{self.end - 1} of {self.topic} partition "
                f"{self.partition} were deleted (below the log start) before being handled")


# (topic, partition, first offset, end offset exclusive) -> what a read of that range found
RangeReader = Callable[[str, int, int, int], Awaitable[RangeRead]]
# (topic, partition) -> the earliest offset still on the topic (the low watermark)
EarliestOffset = Callable[[str, int], Awaitable[int]]
LostReport = Callable[[LostRange], Awaitable[None]]
# (topic, partition, first offset, end offset exclusive): a range handled outside the consumer
Passed = Callable[[str, int, int, int], Awaitable[None]]
Sleep = Callable[[float], Awaitable[Any]]


ledger_key = offset_key


async def _log_only(lost: LostRange) -> None:
    log.error("%s", lost.describe())


async def _nobody(_topic: str, _partition: int, _start: int, _end: int) -> None:
    return None


class OffsetLedger:
    def __init__(
        self,
        table: MutableMapping[str, Any],
        read_range: RangeReader,
        earliest: EarliestOffset,
        *,
        report_lost: LostReport = _log_only,
        passed: Passed = _nobody,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        window: OffsetWindow | None = None,
    ) -> None:
        self._table = table
        # offsets handed to tenant lanes and not all done yet (lanes.py): the
        # next offset expected is past them, though the table records less
        self.window = window
        self._read_range = read_range
        self._earliest = earliest
        self._report_lost = report_lost
        self._passed = passed
        self._retry = retry or RetryPolicy(0.5, 30.0)
        self._sleep = sleep
        self.state = WaitState()  # a gap not read back yet, for the status page
        self.lost: list[LostRange] = []  # every range found gone, for the status page

    async def admit(self, messages: Sequence[Message]) -> list[Message]:
        """The messages to handle, in offset order: duplicates dropped, gaps filled."""
        return [m async for chunk in self.admit_chunks(messages) for m in chunk]

    async def admit_chunks(
        self, messages: Sequence[Message], max_read: int | None = None
    ) -> AsyncIterator[list[Message]]:
        """``admit`` in pieces, in order: a gap is read back ``max_read`` offsets at a time.

        After a long wait (a tenant lane holding the ledger back while others
        went on) a restart can find a long gap; read whole, it would all be
        in memory at once.
        """
        pending: list[Message] = []
        expected: dict[tuple[str, int], int] = {}
        # a restart re-reads from the group's commit: thousands of them, one line a batch
        dropped: dict[tuple[str, int], tuple[int, int, int]] = {}
        for message in sorted(messages, key=lambda m: (m.topic, m.partition or 0, m.offset or 0)):
            if message.offset is None:
                pending.append(message)
                continue
            tp = (message.topic, message.partition or 0)
            if tp not in expected:
                expected[tp] = await self.next_offset(*tp)
            nxt = expected[tp]
            if message.offset < nxt:
                first, last, n = dropped.get(tp, (message.offset, message.offset, 0))
                dropped[tp] = (min(first, message.offset), max(last, message.offset), n + 1)
                continue
            if message.offset > nxt:
                log.warning(
                    "offsets %s..%s of %s were skipped by the consumer; reading them first",
                    nxt, message.offset - 1, tp,
                )
                size = max(1, max_read or message.offset - nxt)
                for start in range(nxt, message.offset, size):
                    piece = await self._read_gap(tp[0], tp[1], start,
                                                 min(start + size, message.offset))
                    if max_read is None:
                        pending += piece
                        continue
                    if pending:
                        yield pending
                        pending = []
                    yield piece
            pending.append(message)
            expected[tp] = message.offset + 1
        for tp, (first, last, n) in dropped.items():
            log.info("%d offset(s) %s..%s of %s were already handled; dropped", n, first, last, tp)
        if pending:
            yield pending

    async def next_offset(self, topic: str, partition: int) -> int:
        """The offset the next message handled on this partition must have."""
        out = self.window.next(topic, partition) if self.window is not None else None
        if out is not None:
            return out
        last = _offset(self._table.get(ledger_key(topic, partition)))
        return last + 1 if last is not None else await self._first_offset(topic, partition)

    def done_through(self, topic: str, partition: int) -> int | None:
        """The last offset handled on this partition, every one before it too."""
        return _offset(self._table.get(ledger_key(topic, partition)))

    async def read_back(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        """Offsets [start, end) read from Kafka, as a gap is (catch_up.py, on an idle worker)."""
        return await self._read_gap(topic, partition, start, end)

    async def _first_offset(self, topic: str, partition: int) -> int:
        """First start on this partition: its low watermark, asked until Kafka answers."""
        attempt = 0
        while True:
            try:
                return await self._earliest(topic, partition)
            except Exception as exc:
                attempt += 1
                self.state.waiting(f"the first offset of {topic} unknown yet: {exc!r}")
                await self._sleep(self._retry.delay(attempt, None))

    async def _read_gap(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        """Every message in [start, end), however many reads it takes."""
        found: list[Message] = []
        nxt, attempt = start, 0
        while nxt < end:
            try:
                low = await self._earliest(topic, partition)
                if low > nxt:
                    gone = LostRange(topic, partition, nxt, min(low, end))
                    await self._lost(gone)
                    nxt = gone.end
                    continue
                read = await self._read_range(topic, partition, nxt, end)
            except Exception as exc:
                log.warning("reading back offsets %s..%s of %s failed: %r",
                            nxt, end - 1, topic, exc)
                read = RangeRead([], nxt)
            fresh = sorted((m for m in read.messages
                            if m.offset is not None and nxt <= m.offset < end),
                           key=lambda m: m.offset or 0)
            reached = max([read.reached, *((m.offset or 0) + 1 for m in fresh)])
            if reached > nxt:
                found += fresh
                nxt, attempt = reached, 0
                continue
            attempt += 1
            self.state.waiting(f"offsets {nxt}..{end - 1} of {topic} not read back yet")
            await self._sleep(self._retry.delay(attempt, None))
        self.state.clear()
        try:
            await self._passed(topic, partition, start, end)
        except Exception:  # the consumer's bookkeeping only: the range is read all the same
            log.exception("could not tell the consumer offsets %s..%s of %s were read back",
                          start, end - 1, topic)
        return found

    async def _lost(self, gone: LostRange) -> None:
        self.lost.append(gone)
        log.error("%s", gone.describe())
        try:
            await self._report_lost(gone)
        except Exception:
            log.exception("could not report %s", gone.describe())

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

    def record(self, topic: str, partition: int, offset: int) -> None:
        """Every offset up to ``offset`` is done (the lanes' contiguous prefix)."""
        self._table[ledger_key(topic, partition)] = {"offset": offset}

    def tenant_done(self, topic: str, partition: int, tenant: str) -> int | None:
        """The last offset of this tenant's commands done here (each tenant's are in order)."""
        return _offset(self._table.get(tenant_offset_key(topic, partition, tenant)))

    def record_tenant(self, topic: str, partition: int, tenant: str, offset: int) -> None:
        self._table[tenant_offset_key(topic, partition, tenant)] = {"offset": offset}

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
