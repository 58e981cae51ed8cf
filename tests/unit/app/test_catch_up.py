"""The idle read-back: offsets past the ledger that no message will ever lead the agent to."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any, cast

from acct2crm.app.catch_up import TP, CatchUp, PartitionGate
from acct2crm.app.command_lanes import PartitionEvents, build_lanes, one_applier
from acct2crm.app.delivery import Delivery
from acct2crm.app.ledger import OffsetLedger, RangeRead, ledger_key
from acct2crm.app.pipeline import ChangeRouter, CommandApplier
from acct2crm.app.steps import ChangeStep, CommandStep
from acct2crm.model.message import Message

CHANGES, COMMANDS = "changes", "commands"


def msg(offset: int, topic: str = CHANGES) -> Message:
    return Message(topic, 0, offset, b"k", f"v{offset}".encode())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Topic:
    """A partition holding offsets 0..end-1; a read may be held up by ``gate``."""

    def __init__(self, end: int) -> None:
        self.end = end
        self.reads: list[tuple[int, int]] = []
        self.hold: asyncio.Event | None = None
        self.reading = asyncio.Event()

    async def read(self, topic: str, partition: int, start: int, end: int) -> RangeRead:
        self.reads.append((start, end))
        self.reading.set()
        if self.hold is not None:
            await self.hold.wait()
        return RangeRead([msg(o, topic) for o in range(start, end)], end)

    async def earliest(self, topic: str, partition: int) -> int:
        return 0

    async def end_offset(self, topic: str, partition: int) -> int | None:
        return self.end


class Router:
    """Records what it handled; may hold a message up to stand for a busy agent."""

    def __init__(self) -> None:
        self.handled: list[int] = []
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def handle(self, message: Message) -> None:
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        self.handled.append(message.offset or 0)


class Applier:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        self.batches.append([m.offset or 0 for m in messages])


class Setup:
    def __init__(self, handled_up_to: int | None, end: int, owned: Collection[TP] | None = None):
        self.topic = Topic(end)
        self.table: dict[str, Any] = {}
        if handled_up_to is not None:
            self.table[ledger_key(CHANGES, 0)] = {"offset": handled_up_to}
        self.ledger = OffsetLedger(self.table, self.topic.read, self.topic.earliest)
        self.clock = Clock()
        self.gate = PartitionGate(self.clock)
        self.router = Router()
        self.applier = Applier()
        self.change_step = ChangeStep(
            self.ledger, cast(ChangeRouter, self.router), Delivery("changes"), self.gate
        )
        self.lanes = build_lanes(
            self.ledger, one_applier(cast(CommandApplier, self.applier), Delivery("commands")),
            PartitionEvents(), batch_size=2, max_held=100,
        )
        self.command_step = CommandStep(self.ledger, self.lanes, self.gate)
        self.owned: Collection[TP] = [(CHANGES, 0)] if owned is None else owned
        self.catch_up = CatchUp(
            self.ledger, self.gate, {CHANGES: self.change_step, COMMANDS: self.command_step},
            self.topic.end_offset, lambda: self.owned, idle_s=2.0,
            chunks={COMMANDS: 2}, clock=self.clock,
        )

    async def checks(self) -> None:
        """A check that finds the ledger behind, and one a moment later (it still is)."""
        await asyncio.wait_for(self.catch_up.check(), 5)
        self.clock.now += 2.5
        await asyncio.wait_for(self.catch_up.check(), 5)

    def last_handled(self, topic: str = CHANGES) -> int:
        return int(self.table[ledger_key(topic, 0)]["offset"])


async def test_an_idle_agent_behind_the_end_gets_the_missing_range_once_in_order() -> None:
    s = Setup(handled_up_to=59, end=63)
    await s.checks()
    assert s.router.handled == [60, 61, 62]
    assert s.last_handled() == 62
    assert s.catch_up.status()["read_back"] == 3
    s.clock.now += 2.5
    await s.checks()  # caught up: nothing read, nothing handled again
    assert s.router.handled == [60, 61, 62]
    assert s.topic.reads == [(60, 63)]
    assert s.catch_up.status()["behind"] == {}


async def test_a_message_just_written_is_left_to_the_consumer_for_a_moment() -> None:
    s = Setup(handled_up_to=59, end=61)
    await asyncio.wait_for(s.catch_up.check(), 5)
    assert s.topic.reads == []
    assert s.catch_up.status()["behind"] == {"changes[0]": 1}
    await s.change_step([msg(60)])  # the consumer hands it over
    s.clock.now += 2.5
    await asyncio.wait_for(s.catch_up.check(), 5)
    assert s.topic.reads == []
    assert s.router.handled == [60]
    assert s.catch_up.status()["behind"] == {}


async def test_a_rewound_ledger_reads_the_whole_partition_back() -> None:
    s = Setup(handled_up_to=-1, end=5)
    await s.checks()
    assert s.router.handled == [0, 1, 2, 3, 4]


async def test_nothing_is_read_while_the_agent_handles_a_message_or_just_did() -> None:
    s = Setup(handled_up_to=59, end=63)
    s.router.hold = asyncio.Event()
    agent = asyncio.create_task(s.change_step([msg(60)]))
    await s.router.started.wait()
    await s.checks()  # the agent holds the partition
    assert s.topic.reads == []
    s.router.hold.set()
    await asyncio.wait_for(agent, 5)
    await s.checks()  # it handled one a moment ago: more may be on its way
    assert s.topic.reads == []
    s.clock.now += 2.5
    await s.checks()
    assert s.router.handled == [60, 61, 62]
    assert s.topic.reads == [(61, 63)]


async def test_what_the_agent_handles_during_a_read_back_is_not_handled_twice() -> None:
    s = Setup(handled_up_to=59, end=63)
    await asyncio.wait_for(s.catch_up.check(), 5)
    s.clock.now += 2.5
    s.topic.hold = asyncio.Event()
    timer = asyncio.create_task(s.catch_up.check())
    await s.topic.reading.wait()  # the read-back has begun; the agent then gets 60 and 61
    await s.change_step([msg(60), msg(61)])
    s.topic.hold.set()
    await asyncio.wait_for(timer, 5)
    assert s.router.handled == [60, 61, 62]
    assert s.last_handled() == 62


async def test_the_agent_and_the_read_back_never_handle_the_partition_at_once() -> None:
    s = Setup(handled_up_to=59, end=63)
    await asyncio.wait_for(s.catch_up.check(), 5)
    s.clock.now += 2.5
    s.router.hold = asyncio.Event()
    timer = asyncio.create_task(s.catch_up.check())
    await s.router.started.wait()  # the read-back is handling offset 60
    agent = asyncio.create_task(s.change_step([msg(61), msg(62), msg(63)]))
    await asyncio.sleep(0.01)
    assert s.router.handled == []  # the agent waits for the partition
    s.router.hold.set()
    await asyncio.wait_for(asyncio.gather(timer, agent), 5)
    assert s.router.handled == [60, 61, 62, 63]


async def test_only_partitions_this_worker_holds_are_read_back() -> None:
    s = Setup(handled_up_to=59, end=63, owned=[])
    await s.checks()
    assert s.topic.reads == []
    assert s.router.handled == []


async def test_commands_are_handed_over_in_batches_in_order() -> None:
    s = Setup(handled_up_to=None, end=5, owned=[(COMMANDS, 0)])
    await s.checks()
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.applier.batches == [[0, 1], [2, 3], [4]]
    assert s.last_handled(COMMANDS) == 4


async def test_a_failing_end_offset_is_shown_and_the_timer_goes_on() -> None:
    s = Setup(handled_up_to=59, end=63)

    async def broken(topic: str, partition: int) -> int | None:
        raise RuntimeError("no broker")

    s.catch_up._end_offset = broken
    await s.checks()
    assert "no broker" in (s.catch_up.status()["error"] or "")
    s.catch_up._end_offset = s.topic.end_offset
    await s.checks()
    assert s.router.handled == [60, 61, 62]
    assert s.catch_up.status()["error"] is None


async def test_a_long_range_is_read_in_slices_within_one_check() -> None:
    s = Setup(handled_up_to=-1, end=7)
    s.catch_up._max_read = 3
    await s.checks()
    assert s.router.handled == list(range(7))
    assert s.topic.reads == [(0, 3), (3, 6), (6, 7)]
