"""A range the ledger read back lets the worker's consumer commit past it.

Faust's own commit logic is exercised here, on the worker's real consumer
(not started): the stall is Faust's behaviour, the fix is ours."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from faust.types import TP

from acct2crm.app.consumer_gaps import consumer_passes
from acct2crm.app.ledger import OffsetLedger, ledger_key
from acct2crm.app.topology import make_app
from acct2crm.settings import Settings
from tests.unit.app.test_ledger import TOPIC, Topic, msg

PART = TP(TOPIC, 0)


def _consumer_after_a_skip(app: Any, held: bool = True) -> Any:
    """Committed up to 100; the agent was handed (and acked) 145..160 only."""
    consumer = app.consumer
    consumer.assignment = lambda: {PART} if held else set()  # not started: no group here
    consumer._committed_offset[PART] = 100
    consumer._acked[PART] = list(range(145, 161))
    return consumer


def test_without_being_told_the_consumer_never_commits_past_a_skip(tmp_path: Path) -> None:
    async def run() -> Any:
        consumer = _consumer_after_a_skip(make_app(Settings(home=tmp_path)))
        return consumer._new_offset(PART)

    assert asyncio.run(run()) is None  # Faust's behaviour: the commit stands still


def test_a_range_the_ledger_read_back_is_passed_by_the_next_commit(tmp_path: Path) -> None:
    async def run() -> tuple[Any, list[int], Any]:
        app = make_app(Settings(home=tmp_path))
        consumer = _consumer_after_a_skip(app)
        topic = Topic()
        ledger = OffsetLedger({ledger_key(TOPIC, 0): 99}, topic.read, topic.earliest,
                              passed=consumer_passes(app))
        batch = await ledger.admit([msg(145)])  # 100..144 never reached the agent
        return consumer._new_offset(PART), [m.offset or 0 for m in batch], topic.reads

    committed, handled, reads = asyncio.run(run())
    assert handled == list(range(100, 146))
    assert reads == [(100, 145)]
    assert committed == 161  # everything up to the last acked offset


def test_the_ledger_reports_every_range_it_reads_back() -> None:
    passed: list[tuple[str, int, int, int]] = []

    async def remember(topic: str, partition: int, start: int, end: int) -> None:
        passed.append((topic, partition, start, end))

    async def run() -> None:
        topic = Topic()
        ledger = OffsetLedger({ledger_key(TOPIC, 0): 9}, topic.read, topic.earliest,
                              passed=remember)
        await ledger.admit([msg(10), msg(13)])  # a skip: 11..12
        await ledger.read_back(TOPIC, 0, 14, 20)  # an idle worker's catch-up

    asyncio.run(run())
    assert passed == [(TOPIC, 0, 11, 13), (TOPIC, 0, 14, 20)]


def test_a_failing_report_loses_nothing_read_back() -> None:
    async def broken(_t: str, _p: int, _s: int, _e: int) -> None:
        raise RuntimeError("consumer gone")

    async def run() -> list[int]:
        topic = Topic()
        ledger = OffsetLedger({ledger_key(TOPIC, 0): 1}, topic.read, topic.earliest,
                              passed=broken)
        return [m.offset or 0 for m in await ledger.admit([msg(5)])]

    assert asyncio.run(run()) == [2, 3, 4, 5]


def test_a_partition_given_away_meanwhile_gets_nothing_added(tmp_path: Path) -> None:
    async def run() -> Any:
        app = make_app(Settings(home=tmp_path))
        consumer = _consumer_after_a_skip(app, held=False)
        await consumer_passes(app)(TOPIC, 0, 100, 145)
        return consumer._gap.get(PART)

    assert not asyncio.run(run())
