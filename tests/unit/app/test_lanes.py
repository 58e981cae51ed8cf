"""Tenant lanes: one tenant waiting never holds another; the ledger keeps the done prefix."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust
import faust.streams
import pytest
from faust.types import TP as FaustTP

from acct2crm.app.catch_up import CatchUp, PartitionGate
from acct2crm.app.command_lanes import (
    PartitionEvents,
    register_lane_stops,
    tenant_of_command,
)
from acct2crm.app.lanes import Apply, TenantLanes, describe
from acct2crm.app.ledger import OffsetLedger, RangeRead, ledger_key
from acct2crm.app.offset_window import TP, OffsetWindow
from acct2crm.app.pipeline import CommandApplier, Outputs
from acct2crm.app.steps import CommandStep
from acct2crm.model.message import Message
from acct2crm.records.avro import command_type, result_type
from acct2crm.records.convert import command_record
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import RetryPolicy
from tests.support.changes import change, row
from tests.support.memory_crm import MemoryCrm

COMMANDS = "commands"


def cmd(offset: int, tenant: str, partition: int = 0) -> Message:
    """A command message whose value names its tenant (the tests' own tenant reader)."""
    return Message(COMMANDS, partition, offset, b"k", f"{tenant}:{offset}".encode())


def tenant_of(message: Message) -> str:
    return (message.value or b"").decode().split(":")[0]


class Topic:
    """The commands partition as Kafka holds it: every message ever written."""

    def __init__(self) -> None:
        self.messages: dict[int, Message] = {}
        self.reads: list[tuple[int, int]] = []

    def write(self, *messages: Message) -> list[Message]:
        for message in messages:
            self.messages[message.offset or 0] = message
        return list(messages)

    async def read(self, topic: str, partition: int, start: int, end: int) -> RangeRead:
        self.reads.append((start, end))
        found = [m for o, m in sorted(self.messages.items()) if start <= o < end]
        return RangeRead(found, end)

    async def read_messages(self, topic: str, partition: int, start: int, end: int
                            ) -> list[Message]:
        return (await self.read(topic, partition, start, end)).messages

    async def earliest(self, topic: str, partition: int) -> int:
        return 0


class Appliers:
    """One in-memory applier per tenant; a tenant's may be held to stand for its CRM."""

    def __init__(self) -> None:
        self.applied: dict[str, list[int]] = {}
        self.holds: dict[str, asyncio.Event] = {}
        self.calls = 0

    def hold(self, tenant: str) -> asyncio.Event:
        self.holds[tenant] = asyncio.Event()
        return self.holds[tenant]

    def __call__(self, tenant: str) -> Apply:
        async def apply(messages: Sequence[Message]) -> None:
            self.calls += 1
            hold = self.holds.get(tenant)
            if hold is not None:
                await hold.wait()
            self.applied.setdefault(tenant, []).extend(m.offset or 0 for m in messages)

        return apply


class Setup:
    def __init__(self, *, max_held: int = 100, batch_size: int = 3,
                 table: dict[str, Any] | None = None, topic: Topic | None = None) -> None:
        self.table: dict[str, Any] = {} if table is None else table
        self.topic = topic or Topic()
        self.ledger = OffsetLedger(self.table, self.topic.read, self.topic.earliest,
                                   window=OffsetWindow())
        self.appliers = Appliers()
        assert self.ledger.window is not None
        self.lanes = TenantLanes(
            self.appliers, tenant_of, self.ledger.window, self.ledger.record,
            self.ledger.read_back, batch_size=batch_size, max_held=max_held,
        )
        self.step = CommandStep(self.ledger, self.lanes, PartitionGate())

    def recorded(self, partition: int = 0) -> int | None:
        value = self.table.get(ledger_key(COMMANDS, partition))
        return None if value is None else int(value["offset"])

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)


async def test_a_waiting_tenant_holds_neither_the_others_nor_loses_its_place() -> None:
    s = Setup()
    a_crm = s.appliers.hold("a")
    batch = s.topic.write(cmd(0, "b"), cmd(1, "a"), cmd(2, "b"), cmd(3, "a"), cmd(4, "b"))
    await s.step(batch)  # returns at once: the step does not wait for any tenant
    more = s.topic.write(cmd(5, "b"), cmd(6, "c"))
    await s.step(more)
    await s.settle()
    assert s.appliers.applied == {"b": [0, 2, 4, 5], "c": [6]}
    assert s.recorded() == 0  # a's offset 1 is not done: the ledger stays before it
    assert s.lanes.tenant_status("a")["queued"] == 2
    assert s.lanes.tenant_status("b")["queued"] == 0
    a_crm.set()
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.appliers.applied["a"] == [1, 3]
    assert s.recorded() == 6
    await s.lanes.stop_all()


async def test_order_per_tenant_is_kept_over_many_batches() -> None:
    s = Setup(batch_size=2)
    tenants = ["a", "b", "c"]
    offset = 0
    for size in (1, 4, 2, 7, 3, 5):
        batch = [cmd(offset + i, tenants[(offset + i) * 7 % 3]) for i in range(size)]
        offset += size
        await s.step(s.topic.write(*batch))
        await asyncio.sleep(0)
    await asyncio.wait_for(s.lanes.drained(), 5)
    for tenant in tenants:
        mine = [o for o in range(offset) if tenants[o * 7 % 3] == tenant]
        assert s.appliers.applied[tenant] == mine
    assert s.recorded() == offset - 1
    await s.lanes.stop_all()


async def test_a_redelivered_offset_in_flight_is_not_applied_twice() -> None:
    s = Setup()
    a_crm = s.appliers.hold("a")
    batch = s.topic.write(cmd(0, "a"), cmd(1, "b"), cmd(2, "a"))
    await s.step(batch)
    await s.settle()
    await s.step(batch)  # the consumer hands the same messages again (rebalance, faust #596)
    await s.step([*s.topic.write(cmd(3, "a")), batch[1]])
    a_crm.set()
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.appliers.applied == {"a": [0, 2, 3], "b": [1]}
    assert s.recorded() == 3
    await s.lanes.stop_all()


async def test_a_gap_before_the_next_batch_is_read_back_and_dispatched_in_order() -> None:
    s = Setup()
    s.topic.write(cmd(0, "a"), cmd(1, "b"), cmd(2, "a"))
    await s.step([s.topic.messages[0]])
    await s.step(s.topic.write(cmd(3, "b")))  # the consumer skipped 1 and 2
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.appliers.applied == {"a": [0, 2], "b": [1, 3]}
    assert s.recorded() == 3
    await s.lanes.stop_all()


async def test_revocation_stops_the_partitions_lanes_and_the_next_owner_reads_on() -> None:
    s = Setup()
    a_crm = s.appliers.hold("a")
    await s.step(s.topic.write(cmd(0, "b"), cmd(1, "a"), cmd(2, "b"), cmd(3, "a")))
    await s.step([cmd(0, "x", partition=1)])
    await s.settle()
    await s.lanes.stop([(COMMANDS, 0)])
    a_crm.set()  # the CRM answers after the partition went away
    await s.settle()
    assert "a" not in s.appliers.applied  # nothing written after revocation returned
    assert s.recorded() == 0
    assert s.lanes.window.next(COMMANDS, 0) is None  # forgotten: the ledger says where to go on
    assert s.appliers.applied["x"] == [0]  # the other partition's lane goes on
    s.appliers.holds.clear()
    await s.step([s.topic.messages[3]])  # a late batch of the revoked partition
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert "a" not in s.appliers.applied  # not ours any more: not applied
    # the new owner (here: the same worker getting it back) starts from the ledger
    s.lanes.reopen([(COMMANDS, 0)])
    await s.step([s.topic.messages[3]])  # the consumer resumes at its committed offset
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.appliers.applied["a"] == [1, 3]
    assert s.appliers.applied["b"] == [0, 2, 2]  # 2 again: re-applied, harmless by position
    assert s.recorded() == 3
    await s.lanes.stop_all()


async def test_a_backlog_past_the_bound_is_kept_as_offsets_and_read_back_in_order() -> None:
    s = Setup(max_held=2, batch_size=2)
    a_crm = s.appliers.hold("a")
    offsets = range(12)
    await s.step(s.topic.write(*(cmd(o, "a" if o % 3 else "b") for o in offsets)))
    await s.settle()
    status = s.lanes.tenant_status("a")
    assert status["queued"] == 2  # the bound: the rest of a's commands are not in memory
    assert status["spilled"] == 6
    assert s.appliers.applied["b"] == [0, 3, 6, 9]
    assert s.recorded() == 0
    a_crm.set()
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.appliers.applied["a"] == [o for o in offsets if o % 3]
    assert s.recorded() == 11
    assert s.topic.reads  # read back from Kafka, not kept
    await s.lanes.stop_all()


async def test_a_lane_writes_tables_as_an_event_of_its_own_partition() -> None:
    seen: list[int | None] = []

    class Event:
        def __init__(self, partition: int) -> None:
            self.message = Message(COMMANDS, partition, 0, None, None)

    events = PartitionEvents()
    kept = [Event(0), Event(1)]
    events.remember(kept)  # type: ignore[arg-type]

    def applier_for(tenant: str) -> Apply:
        async def apply(messages: Sequence[Message]) -> None:
            event = faust.streams.current_event()
            seen.append(None if event is None else event.message.partition)

        return apply

    lanes = TenantLanes(applier_for, tenant_of, OffsetWindow(), lambda t, p, o: None,
                        Topic().read_messages, enter=events.enter)
    lanes.dispatch([cmd(0, "a", partition=1), cmd(0, "b", partition=0)])
    await asyncio.wait_for(lanes.drained(), 5)
    assert sorted(s for s in seen if s is not None) == [0, 1]
    assert len(seen) == 2
    await lanes.stop_all()


def test_a_commands_tenant_is_read_from_the_record() -> None:
    value = command_type().encode(command_record(intent_of(7, "acme"), 3))
    assert tenant_of_command(Message(COMMANDS, 0, 3, b"7", value)) == "acme"
    assert tenant_of_command(Message(COMMANDS, 0, 4, b"7", b"garbage")) == ""


def intent_of(accounting_id: int, tenant: str, code: str = "KH1", lsn: int = 10) -> SyncIntent:
    found = classify(change("c", after=row(accounting_id, code), lsn=lsn, tenant=tenant),
                     DEFAULT_SCOPE)
    assert isinstance(found, SyncIntent)
    return found


def test_window_prefix_waits_for_the_first_pending_and_holds() -> None:
    window = OffsetWindow()
    tp: TP = (COMMANDS, 0)
    admitted = window.admit([cmd(o, "a") for o in range(5, 10)])
    assert [m.offset for m in admitted] == [5, 6, 7, 8, 9]
    for offset in (5, 6, 7):
        window.keep(tp, offset)
    window.hold(tp, "lane", 8)
    assert window.done(tp, [6, 7]) is None  # 5 still pending
    assert window.done(tp, [5]) == 7  # the hold at 8 stops it
    window.release(tp, "lane")
    assert window.settled(tp) == 9
    assert window.admit([cmd(9, "a"), cmd(10, "a")])[0].offset == 10


class HeldCrm(MemoryCrm):
    """A tenant's CRM account whose writes wait until released."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.open.set()

    async def create(self, fields: Any) -> Any:
        await self.open.wait()
        return await super().create(fields)


class Worker:
    """One worker's life over the same tables (ledger, positions, codes) and CRMs."""

    def __init__(self, topic: Topic, tables: dict[str, dict[str, Any]],
                 crms: dict[str, HeldCrm]) -> None:
        self.setup = Setup(table=tables["ledger"], topic=topic)
        self.results: list[tuple[str, str]] = []
        appliers = {t: self._applier(t, crm, tables) for t, crm in crms.items()}
        ledger = self.setup.ledger
        self.setup.lanes = TenantLanes(
            lambda tenant: appliers[tenant], tenant_of_command, self.setup.lanes.window,
            ledger.record, ledger.read_back,
            done_mark=ledger.tenant_done, record_mark=ledger.record_tenant,
        )
        self.setup.step = CommandStep(self.setup.ledger, self.setup.lanes)

    def _applier(self, tenant: str, crm: HeldCrm, tables: dict[str, dict[str, Any]]) -> Apply:
        engine = SinkEngine(crm, CodeCache(tables.setdefault(f"codes-{tenant}", {}), tenant),
                            tables["positions"], retry=RetryPolicy(0.001, 0.005))

        async def seed() -> None:
            return None

        async def result(key: bytes | None, value: bytes) -> None:
            self.results.append((tenant, str(result_type().decode(value)["action"])))

        async def nothing(key: bytes | None, value: bytes) -> None:
            return None

        applier = CommandApplier(engine, Outputs(tenant, nothing, result, nothing), seed)
        return applier.handle_batch


def command(offset: int, tenant: str, accounting_id: int, code: str, **fields: Any) -> Message:
    before = None if not fields else row(accounting_id, code)
    found = classify(change("u" if fields else "c", before=before,
                            after=row(accounting_id, code, **fields), lsn=10 + offset,
                            tenant=tenant), DEFAULT_SCOPE)
    assert isinstance(found, SyncIntent)
    value = command_type().encode(command_record(found, offset))
    return Message(COMMANDS, 0, offset, str(accounting_id).encode(), value)


@pytest.mark.parametrize("lost", ["nothing", "marks", "marks, positions and codes"])
async def test_a_restart_re_reads_past_the_prefix_without_a_second_crm_write(lost: str) -> None:
    """Tenant b was done out of order when the worker died; a's commands waited."""
    topic = Topic()
    tables: dict[str, dict[str, Any]] = {"ledger": {}, "positions": {}}
    crms = {"a": HeldCrm(), "b": HeldCrm()}
    topic.write(command(0, "b", 1, "B1"), command(1, "a", 1, "A1"), command(2, "b", 2, "B2"),
                command(3, "b", 1, "B1", phone="0900"), command(4, "a", 2, "A2"))
    crms["a"].open.clear()  # tenant a's CRM is down
    first = Worker(topic, tables, crms)
    await first.setup.step([topic.messages[o] for o in range(5)])
    for _ in range(200):
        if crms["b"].writes == 3:
            break
        await asyncio.sleep(0.001)
    assert crms["b"].writes == 3  # b is done although a waits
    assert first.setup.recorded() == 0  # a's offset 1 is not done
    await first.setup.lanes.stop_all()  # the worker dies; a's writes never happened
    crms["a"].open.set()
    # what of the tables' last writes never reached their changelogs
    if lost != "nothing":
        tables["ledger"] = {k: v for k, v in tables["ledger"].items() if k.count("\x1f") < 2}
    if "positions" in lost:
        tables = {"ledger": tables["ledger"], "positions": {}}
    second = Worker(topic, tables, crms)
    await second.setup.step([topic.messages[4]])  # the consumer resumes at its committed offset
    await asyncio.wait_for(second.setup.lanes.drained(), 5)
    assert crms["b"].writes == 3  # b's commands read again: nothing written twice
    assert crms["a"].writes == 2
    assert len(crms["b"].records) == 2
    b_results = sorted(action for tenant, action in second.results if tenant == "b")
    if lost == "nothing":  # b's mark says they were done: not applied again at all
        assert b_results == []
    elif lost == "marks":  # applied again: the row positions make them "unchanged"
        assert b_results == ["unchanged", "unchanged"]
    assert second.setup.recorded() == 4
    await second.setup.lanes.stop_all()


def test_status_text_names_each_waiting_tenant() -> None:
    lines = describe({
        "a": {"queued": 3, "spilled": 10, "state": "waiting_for_crm",
              "waiting_reason": "CRM answered 503", "oldest_waiting_s": 41.7},
        "b": {"queued": 0, "spilled": 0, "state": "idle", "waiting_reason": None,
              "oldest_waiting_s": None},
        "": {"queued": 1, "spilled": 0, "state": "queued", "waiting_reason": None,
             "oldest_waiting_s": 0.2},
    })
    assert lines == [
        "sync       tenant (unreadable): 1 command(s) waiting for 0s (queued)",
        "sync       tenant a: 13 command(s) waiting for 42s (CRM answered 503)",
    ]


async def test_a_paused_tenant_waits_alone_and_says_so() -> None:
    paused = {"a"}
    resumed = asyncio.Event()

    async def gate(tenant: str) -> None:
        while tenant in paused:
            await resumed.wait()

    s = Setup()
    s.lanes = TenantLanes(s.appliers, tenant_of, s.lanes.window, s.ledger.record,
                          s.ledger.read_back, gate=gate, paused=lambda t: t in paused)
    s.step = CommandStep(s.ledger, s.lanes)
    await s.step(s.topic.write(cmd(0, "a"), cmd(1, "b"), cmd(2, "a"), cmd(3, "b")))
    await s.settle()
    assert s.appliers.applied == {"b": [1, 3]}
    assert s.lanes.tenant_status("a")["state"] == "paused"
    assert s.recorded() is None  # offset 0 (a's) is not done
    paused.clear()
    resumed.set()
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.appliers.applied["a"] == [0, 2]
    assert s.recorded() == 3
    await s.lanes.stop_all()


async def test_the_idle_read_back_reads_nothing_while_a_tenant_waits() -> None:
    s = Setup()
    s.appliers.hold("a")
    await s.step(s.topic.write(cmd(0, "a"), cmd(1, "b"), cmd(2, "b")))
    await s.settle()
    reads = len(s.topic.reads)
    now = [0.0]

    async def end_offset(topic: str, partition: int) -> int:
        return 3

    catch_up = CatchUp(s.ledger, PartitionGate(lambda: now[0]), {COMMANDS: s.step}, end_offset,
                       lambda: [(COMMANDS, 0)], idle_s=2.0, clock=lambda: now[0])
    for _ in range(3):
        now[0] += 2.5
        await catch_up.check()
    assert len(s.topic.reads) == reads  # everything up to the end is out with a lane
    assert catch_up.status()["behind"] == {}
    await s.lanes.stop_all()


async def test_a_long_gap_is_read_back_and_handed_out_a_piece_at_a_time() -> None:
    s = Setup()
    s.step = CommandStep(s.ledger, s.lanes, max_read=3)
    s.topic.write(*(cmd(o, "ab"[o % 2]) for o in range(10)))
    await s.step([s.topic.messages[9]])  # a restart after a long wait: 0..8 not recorded
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.topic.reads == [(0, 3), (3, 6), (6, 9)]
    assert s.appliers.applied == {"a": [0, 2, 4, 6, 8], "b": [1, 3, 5, 7, 9]}
    assert s.recorded() == 9
    await s.lanes.stop_all()


async def test_faust_revocation_and_assignment_signals_stop_and_reopen_lanes() -> None:
    app = faust.App("lanes-signals", broker="memory://", store="memory://")
    s = Setup()
    register_lane_stops(app, s.lanes, PartitionEvents())
    s.appliers.hold("a")
    await s.step(s.topic.write(cmd(0, "a")))
    await s.settle()
    await app.on_partitions_revoked.send({FaustTP(COMMANDS, 0)})
    assert s.lanes.status() == {}  # the partition's lanes are gone
    await s.step([cmd(1, "b")])
    await s.settle()
    assert s.appliers.applied == {}  # revoked: a late batch is not applied
    await app.on_partitions_assigned.send({FaustTP(COMMANDS, 0)})
    s.appliers.holds.clear()  # a's CRM answers again
    await s.step([cmd(1, "b")])  # from the ledger on: a's command 0 again, then b's
    await asyncio.wait_for(s.lanes.drained(), 5)
    assert s.appliers.applied == {"a": [0], "b": [1]}
    await s.lanes.stop_all()
