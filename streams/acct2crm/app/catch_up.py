"""Reading back what the consumer skipped at the end of a partition, on an idle worker.

The ledger (ledger.py) finds a gap only when the next message arrives behind
it. Faust's consumer can start past the last message(s) of a partition after
a restart or a rewind (the offsets are committed, the messages never handed
to the agent); on a quiet system no next message comes, and those changes
would wait forever. So a timer compares, for every partition this worker
holds, the ledger's last handled offset with the partition's end. Once the
agent has been idle, and the ledger behind the end at the same offset, for
a moment (a message just written is the consumer's to hand over), it reads
the missing range back and hands it to the agent's own step, in order.

The step takes one lock per partition (``PartitionGate``), so the agent and
the read-back never handle messages of the same partition at once; the
ledger still drops every offset already handled, whoever handled it first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import faust
from faust.types import TP as FaustTP

from acct2crm.app.ledger import OffsetLedger
from acct2crm.model.message import Message

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
IDLE_S = 2.0  # the agent handled nothing for this long: it is not about to
MAX_READ = 500  # offsets read back and handed to the step at once

TP = tuple[str, int]
Step = Callable[[Sequence[Message]], Awaitable[None]]
# (topic, partition) -> the offset the next message will get (high watermark), None if unknown
EndOffset = Callable[[str, int], Awaitable[int | None]]
# the partitions this worker holds now (none while a rebalance or recovery is under way)
Owned = Callable[[], Collection[TP]]


class PartitionGate:
    """One lock per topic partition, and when a message of it was last handled."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._locks: dict[TP, asyncio.Lock] = {}
        self._last: dict[TP, float] = {}
        self._clock = clock

    def _lock(self, tp: TP) -> asyncio.Lock:
        return self._locks.setdefault(tp, asyncio.Lock())

    @asynccontextmanager
    async def holding(self, messages: Sequence[Message]) -> AsyncIterator[None]:
        """Hold the locks of every partition in ``messages`` (in a fixed order)."""
        tps = sorted({(m.topic, m.partition or 0) for m in messages})
        locks = [self._lock(tp) for tp in tps]
        for n, lock in enumerate(locks):
            try:
                await lock.acquire()
            except BaseException:
                for held in locks[:n]:
                    held.release()
                raise
        try:
            yield
        finally:
            now = self._clock()
            for tp, lock in zip(tps, locks, strict=True):
                self._last[tp] = now
                lock.release()

    def busy(self, tp: TP) -> bool:
        return self._lock(tp).locked()

    def idle(self, tp: TP, idle_s: float) -> bool:
        """Nobody handles this partition now, nor did for ``idle_s``."""
        if self._lock(tp).locked():
            return False
        last = self._last.get(tp)
        return last is None or self._clock() - last >= idle_s


class CatchUp:
    """The periodic check: partitions behind their end, read back and handled."""

    def __init__(
        self,
        ledger: OffsetLedger,
        gate: PartitionGate,
        steps: Mapping[str, Step],
        end_offset: EndOffset,
        owned: Owned,
        *,
        idle_s: float = IDLE_S,
        max_read: int = MAX_READ,
        chunks: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._since: dict[TP, tuple[int, float]] = {}  # first seen behind at this offset, when
        self._gate = gate
        self._steps = dict(steps)  # topic -> the agent's step
        self._chunks = dict(chunks or {})  # topic -> messages per step call (its batch size)
        self._end_offset = end_offset
        self._owned = owned
        self._idle_s = idle_s
        self._max_read = max_read
        self.behind: dict[str, int] = {}  # "topic[partition]" -> offsets left to read back
        self.read_back = 0  # messages handed to a step by this check since start
        self.error: str | None = None

    async def check(self) -> None:
        """One pass over the owned partitions; never raises (a timer that raises stops)."""
        try:
            owned = [tp for tp in self._owned() if tp[0] in self._steps]
            for gone in set(self.behind) - {f"{t}[{p}]" for t, p in owned}:
                del self.behind[gone]
            for tp in sorted(owned):
                await self._catch_up(tp)
            self.error = None
        except Exception as exc:
            self.error = f"could not check for skipped offsets: {exc!r}"
            log.warning("%s", self.error)

    async def _catch_up(self, tp: TP) -> None:
        topic, partition = tp
        where = f"{topic}[{partition}]"
        if not self._gate.idle(tp, self._idle_s):
            return  # the agent is at work: a gap it meets it reads back itself
        end = await self._end_offset(topic, partition)
        nxt = await self._ledger.next_offset(topic, partition)
        if end is None or nxt >= end:
            self.behind.pop(where, None)
            self._since.pop(tp, None)
            return
        self.behind[where] = end - nxt
        seen = self._since.get(tp)
        if seen is None or seen[0] != nxt:
            # just written, most likely: the consumer hands it over in a moment
            self._since[tp] = (nxt, self._clock())
            return
        if self._clock() - seen[1] < self._idle_s:
            return
        while nxt < end:  # behind for a while, nobody handling: it was skipped
            if self._gate.busy(tp) or tp not in set(self._owned()):
                return
            upto = min(end, nxt + self._max_read)
            log.warning("offsets %s..%s of %s were never handed to the agent; reading them back",
                        nxt, upto - 1, where)
            messages = await self._ledger.read_back(topic, partition, nxt, upto)
            size = max(1, self._chunks.get(topic, len(messages) or 1))
            for first in range(0, len(messages), size):
                # the step admits them through the ledger again: whatever the agent
                # handled meanwhile is dropped there, the rest handled in order
                await self._steps[topic](messages[first:first + size])
            self.read_back += len(messages)
            reached = await self._ledger.next_offset(topic, partition)
            self.behind[where] = max(0, end - reached)
            if reached <= nxt:
                return  # no progress (the step failed): the next check tries again
            nxt = reached
        self.behind.pop(where, None)
        self._since.pop(tp, None)

    def status(self) -> dict[str, Any]:
        return {"behind": dict(self.behind), "read_back": self.read_back, "error": self.error}


def owned_partitions(app: Any, topics: Collection[str]) -> Collection[TP]:
    """``topics``' partitions assigned here, once tables are restored and no rebalance runs."""
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        return ()
    return [(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in topics]


def register_catch_up(app: faust.App, catch_up: CatchUp, name: str) -> None:
    @app.timer(interval=CHECK_EVERY_S, name=f"catch-up-{name}")  # type: ignore[untyped-decorator]
    async def read_back_skipped() -> None:
        await catch_up.check()


def end_offset_of(app: Any) -> EndOffset:
    """The partition's end as the broker says now (the worker's own consumer asks)."""

    async def end_offset(topic: str, partition: int) -> int | None:
        tp = FaustTP(topic, partition)
        ends = await app.consumer.highwaters(tp)
        end = ends.get(tp)
        return None if end is None else int(end)

    return end_offset
