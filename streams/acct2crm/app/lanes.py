"""Per-tenant lanes: one tenant waiting for its CRM never holds another.

Several tenants' commands share a partition. Applying a batch and awaiting
it before the next would make every tenant wait for the slowest CRM. So the
command step only admits and sorts: each tenant's commands go, in offset
order, to that tenant's lane, an asyncio task with its own queue that
applies them in order through the tenant's applier. A lane that waits (CRM
down, slow, 429, 401, or the tenant paused) waits alone.

Offsets are done out of order across lanes; the offset window
(offset_window.py) keeps the ledger at the contiguous done prefix, so after
a crash everything not surely done is read again (and re-applying is
harmless: row positions and CRM look-ups turn it into "unchanged").

A lane keeps at most ``max_held`` messages in memory. Beyond that it keeps
only where its spilled run starts and ends, and reads those messages back
from Kafka (in chunks, keeping only its own) once it has room again: no
loss, no unbounded memory, and the step never waits for a slow tenant.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from acct2crm.app.offset_window import TP, OffsetWindow
from acct2crm.model.message import Message
from acct2crm.sink.pacing import RetryPolicy

log = logging.getLogger(__name__)

# applies a tenant's commands in order and returns once their records are on
# the broker; it should not raise (a raise is retried: nothing is skipped)
Apply = Callable[[Sequence[Message]], Awaitable[None]]
ApplierFor = Callable[[str], Apply]
TenantOf = Callable[[Message], str]
# (topic, partition, offset): the contiguous done prefix, for the ledger
Record = Callable[[str, int, int], None]
# make this task's table writes go to this partition (Faust's current event)
Enter = Callable[[TP], None]
Gate = Callable[[str], Awaitable[None]]  # returns once the tenant is not paused
Paused = Callable[[str], bool]
Reason = Callable[[str], "str | None"]  # why the tenant's applier waits, if it does
# (topic, partition, start, end): messages of [start, end) read back from Kafka
ReadBack = Callable[[str, int, int, int], Awaitable[list[Message]]]
LaneKey = tuple[str, int, str]
# (topic, partition, tenant): the last offset of the tenant's commands done there, if known
DoneMark = Callable[[str, int, str], "int | None"]
RecordMark = Callable[[str, int, str, int], None]


def _enter_nothing(tp: TP) -> None:
    pass


def _never(tenant: str) -> bool:
    return False


def _no_reason(tenant: str) -> str | None:
    return None


def _no_mark(topic: str, partition: int, tenant: str) -> int | None:
    return None


def _forget_mark(topic: str, partition: int, tenant: str, offset: int) -> None:
    pass


@dataclass
class _Held:
    message: Message
    since: float


@dataclass
class Lane:
    tp: TP
    tenant: str
    queue: deque[_Held] = field(default_factory=deque)
    spill_from: int | None = None  # first offset of ours not kept in memory
    spill_end: int = 0  # past the last offset that may be ours in the spilled run
    spill_since: float | None = None
    spilled: int = 0  # messages of ours admitted into the spilled run (and not read back)
    busy: bool = False  # applying a batch now
    paused: bool = False  # waiting at the pause gate
    error: str | None = None  # the last unexpected failure, retried
    done_up_to: int | None = None  # every command of ours up to this offset is done
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def key(self) -> LaneKey:
        return (self.tp[0], self.tp[1], self.tenant)

    def oldest(self) -> float | None:
        times = [t for t in (self.queue[0].since if self.queue else None, self.spill_since)
                 if t is not None]
        return min(times) if times else None


class TenantLanes:
    def __init__(
        self,
        applier_for: ApplierFor,
        tenant_of: TenantOf,
        window: OffsetWindow,
        record: Record,
        read_back: ReadBack,
        *,
        batch_size: int = 64,
        max_held: int = 10_000,
        enter: Enter = _enter_nothing,
        gate: Gate | None = None,
        paused: Paused = _never,
        reason: Reason = _no_reason,
        done_mark: DoneMark = _no_mark,
        record_mark: RecordMark = _forget_mark,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._applier_for = applier_for
        self._tenant_of = tenant_of
        self.window = window
        self._record = record
        self._read_back = read_back
        self._batch = max(1, batch_size)
        self._max_held = max(1, max_held)
        self._enter = enter
        self._gate = gate
        self._paused = paused
        self._reason = reason
        self._done_mark = done_mark
        self._record_mark = record_mark
        self._retry = retry or RetryPolicy(0.5, 30.0)
        self._clock = clock
        self._lanes: dict[LaneKey, Lane] = {}
        self._closed: set[TP] = set()  # revoked: a late batch of theirs is not ours to apply
        self._idle = asyncio.Event()
        self._idle.set()

    # --- handing work out (the command step) -------------------------------

    def dispatch(self, messages: Sequence[Message]) -> None:
        """Hand admitted messages to their tenants' lanes, in order; never waits.

        ``messages`` are the ledger's and the window's admitted ones: each
        offset once, in order per partition.
        """
        open_ = [m for m in messages if (m.topic, m.partition or 0) not in self._closed]
        touched: set[TP] = set()
        for message in self.window.admit(open_):
            tp = (message.topic, message.partition or 0)
            touched.add(tp)
            lane = self._lane(tp, self._tenant_of(message))
            offset = message.offset
            if offset is not None and lane.done_up_to is not None and offset <= lane.done_up_to:
                continue  # done before a restart (out of order): not kept, so counted done
            if offset is None:
                lane.queue.append(_Held(message, self._clock()))
            elif lane.spill_from is None and len(lane.queue) < self._max_held:
                self.window.keep(tp, offset)
                lane.queue.append(_Held(message, self._clock()))
            else:
                if lane.spill_from is None:
                    lane.spill_from, lane.spill_since = offset, self._clock()
                    self.window.hold(tp, lane.key, offset)
                    log.warning("tenant %s holds %d commands; later ones are read back "
                                "from offset %s of %s[%s]", lane.tenant, len(lane.queue),
                                offset, *tp)
                lane.spill_end = offset + 1
                lane.spilled += 1
            lane.wake.set()
            self._idle.clear()
        for tp in touched:
            self._note(tp, self.window.settled(tp))

    def _lane(self, tp: TP, tenant: str) -> Lane:
        key = (tp[0], tp[1], tenant)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(tp, tenant)
            try:
                lane.done_up_to = self._done_mark(tp[0], tp[1], tenant)
            except Exception:  # unknown: its commands are applied again, harmless by position
                log.exception("could not read how far tenant %s got", tenant)
            lane.task = asyncio.get_running_loop().create_task(
                self._run(lane), name=f"lane-{tenant}-{tp[0]}[{tp[1]}]")
        return lane

    # --- a lane ---------------------------------------------------------------

    async def _run(self, lane: Lane) -> None:
        attempt = 0
        while True:
            if not lane.queue and lane.spill_from is not None:
                try:
                    await self._refill(lane)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the run stays where it was: read again later
                    attempt += 1
                    lane.error = f"reading back spilled commands: {type(exc).__name__}: {exc}"
                    log.exception("tenant %s: %s", lane.tenant, lane.error)
                    await asyncio.sleep(self._retry.delay(attempt, None))
                continue
            if not lane.queue:
                lane.wake.clear()
                self._check_idle()
                await lane.wake.wait()
                continue
            batch = [held.message for held in list(lane.queue)[:self._batch]]
            try:
                await self._apply(lane, batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried as it is: skipping it would lose a change
                attempt += 1
                lane.error = f"{type(exc).__name__}: {exc}"
                log.exception("tenant %s: applying %d command(s) failed; trying again",
                              lane.tenant, len(batch))
                await asyncio.sleep(self._retry.delay(attempt, None))
                continue
            attempt, lane.error = 0, None
            for _ in batch:
                lane.queue.popleft()
            offsets = [m.offset for m in batch if m.offset is not None]
            if offsets:
                lane.done_up_to = max(offsets)
                self._mark(lane)
            self._note(lane.tp, self.window.done(lane.tp, offsets))

    async def _apply(self, lane: Lane, batch: Sequence[Message]) -> None:
        if self._gate is not None:
            lane.paused = self._paused(lane.tenant)
            try:
                await self._gate(lane.tenant)  # a paused tenant's lane waits, the rest flow
            finally:
                lane.paused = False
        lane.busy = True
        try:
            self._enter(lane.tp)  # table writes of this task go to the lane's partition
            await self._applier_for(lane.tenant)(batch)
        finally:
            lane.busy = False

    async def _refill(self, lane: Lane) -> None:
        """Read the next chunk of the spilled run back from Kafka and keep our own."""
        start = lane.spill_from
        assert start is not None
        end = min(lane.spill_end, start + self._max_held)
        read = await self._read_back(lane.tp[0], lane.tp[1], start, end)
        ours = [m for m in sorted(read, key=lambda m: m.offset or 0)
                if m.offset is not None and start <= m.offset < end
                and self._tenant_of(m) == lane.tenant]
        now = self._clock()
        for message in ours:
            self.window.keep(lane.tp, message.offset or 0)
            lane.queue.append(_Held(message, lane.spill_since or now))
        lane.spilled = max(0, lane.spilled - len(ours))
        if end >= lane.spill_end:
            lane.spill_from, lane.spill_since, lane.spilled = None, None, 0
            self.window.release(lane.tp, lane.key)
        else:
            lane.spill_from = end
            self.window.hold(lane.tp, lane.key, end)
        self._note(lane.tp, self.window.settled(lane.tp))

    def _note(self, tp: TP, prefix: int | None) -> None:
        if prefix is None:
            return
        try:
            self._enter(tp)
            self._record(tp[0], tp[1], prefix)
        except Exception:
            log.exception("could not record handled offsets of %s[%s]; they may be "
                          "handled again", *tp)

    def _mark(self, lane: Lane) -> None:
        """Remember how far this tenant got, so a restart does not apply it twice."""
        if lane.done_up_to is None:
            return
        try:
            self._enter(lane.tp)
            self._record_mark(lane.tp[0], lane.tp[1], lane.tenant, lane.done_up_to)
        except Exception:
            log.exception("could not record how far tenant %s got; its commands may be "
                          "applied again", lane.tenant)

    def _check_idle(self) -> None:
        if all(not lane.queue and lane.spill_from is None and not lane.busy
               for lane in self._lanes.values()):
            self._idle.set()

    # --- rebalance, shutdown, tests --------------------------------------------

    async def stop(self, tps: Collection[TP]) -> None:
        """Stop the lanes of these partitions; once this returns they write nothing more.

        What they had not done stays unrecorded in the ledger: the partition's
        next owner reads it again from there.
        """
        self._closed.update(tps)
        lanes = [lane for lane in self._lanes.values() if lane.tp in set(tps)]
        for lane in lanes:
            del self._lanes[lane.key]
            if lane.task is not None:
                lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in lanes if lane.task is not None),
                             return_exceptions=True)
        for tp in set(tps):
            self.window.forget(tp)
        self._check_idle()

    def reopen(self, tps: Collection[TP]) -> None:
        """These partitions are (again) this worker's: their batches are handed out."""
        self._closed.difference_update(tps)

    async def stop_all(self) -> None:
        await self.stop({lane.tp for lane in self._lanes.values()} | set(
            self.window.partitions()))

    async def drained(self) -> None:
        """Return once every lane has done all it was given (tests, a clean stop)."""
        await self._idle.wait()

    # --- status -------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Per tenant: how many commands wait, why, and since how long."""
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        for lane in self._lanes.values():
            entry = out.setdefault(lane.tenant, {
                "queued": 0, "spilled": 0, "state": "idle", "waiting_reason": None,
                "oldest_waiting_s": None})
            entry["queued"] += len(lane.queue)
            entry["spilled"] += lane.spilled
            oldest = lane.oldest()
            if oldest is not None:
                age = round(now - oldest, 3)
                entry["oldest_waiting_s"] = max(age, entry["oldest_waiting_s"] or 0.0)
            state, reason = self._state(lane)
            if state != "idle":
                entry["state"], entry["waiting_reason"] = state, reason
        return out

    def tenant_status(self, tenant: str) -> dict[str, Any]:
        return self.status().get(tenant, {
            "queued": 0, "spilled": 0, "state": "idle", "waiting_reason": None,
            "oldest_waiting_s": None})

    def _state(self, lane: Lane) -> tuple[str, str | None]:
        if lane.paused:
            return "paused", f"tenant {lane.tenant} is paused"
        if lane.error is not None:
            return "retrying", lane.error
        if lane.busy:
            reason = self._reason(lane.tenant)
            return ("waiting_for_crm", reason) if reason else ("applying", None)
        if lane.queue or lane.spill_from is not None:
            return "queued", None
        return "idle", None


def describe(lanes: dict[str, dict[str, Any]] | None) -> list[str]:
    """Status lines for the tenants whose lanes hold commands (``status`` text form)."""
    lines = []
    for tenant, lane in sorted((lanes or {}).items()):
        held = int(lane.get("queued") or 0) + int(lane.get("spilled") or 0)
        if not held:
            continue
        age = lane.get("oldest_waiting_s")
        why = lane.get("waiting_reason") or lane.get("state")
        lines.append(f"sync       tenant {tenant or '(unreadable)'}: {held} command(s) waiting"
                     + (f" for {age:.0f}s" if age is not None else "") + f" ({why})")
    return lines
