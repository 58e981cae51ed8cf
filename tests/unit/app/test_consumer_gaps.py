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


def _stalled(app: Any, topic: str = TOPIC) -> Any:
    """Committed at 100; acks lost for 100..299; 300..310 acked since."""
    consumer = app.consumer
    tp = TP(topic, 0)
    consumer.assignment = lambda: {tp}
    consumer._committed_offset[tp] = 100
    consumer._acked[tp] = list(range(300, 311))
    return consumer


def test_a_hole_that_stays_is_passed_up_to_what_the_ledger_handled(tmp_path: Path) -> None:
    from acct2crm.app.consumer_gaps import CommitHoles

    async def run() -> list[Any]:
        app = make_app(Settings(home=tmp_path))
        consumer = _stalled(app)
        done = {TOPIC: 250}
        holes = CommitHoles(app, lambda topic, _p: done.get(topic), [TOPIC])
        seen = [consumer._new_offset(PART)]  # Faust alone: stalled
        await holes.check()  # first sight: an ack may still be on its way
        seen.append(holes.passed)
        await holes.check()  # still there: passed, as far as the ledger vouches
        seen += [holes.passed, consumer._new_offset(PART)]
        consumer._committed_offset[PART] = seen[-1]  # as Faust's commit does
        done[TOPIC] = 320
        await holes.check()  # a new hole (251..299): first sight
        await holes.check()
        seen += [holes.passed, consumer._new_offset(PART)]
        return seen

    # Faust counts its last commit (100, then 251) as done: each pass starts one past it
    assert asyncio.run(run()) == [None, 0, 150, 251, 198, 311]


def test_a_hole_that_closes_or_that_the_ledger_does_not_vouch_for_is_left(
    tmp_path: Path,
) -> None:
    from acct2crm.app.consumer_gaps import CommitHoles

    async def run() -> list[int]:
        app = make_app(Settings(home=tmp_path))
        consumer = _stalled(app)
        nothing = CommitHoles(app, lambda _t, _p: None, [TOPIC])  # no ledger record yet
        behind = CommitHoles(app, lambda _t, _p: 90, [TOPIC])  # ledger behind the commit
        other = CommitHoles(app, lambda _t, _p: 400, ["commands"])  # not its topic
        closing = CommitHoles(app, lambda _t, _p: 400, [TOPIC])
        for holes in (nothing, behind, other, closing):
            await holes.check()
        consumer._acked[PART] = list(range(101, 311))  # the acks arrived after all
        for holes in (nothing, behind, other, closing):
            await holes.check()
        return [h.passed for h in (nothing, behind, other, closing)]

    assert asyncio.run(run()) == [0, 0, 0, 0]


def test_when_the_worker_stops_a_hole_is_passed_before_the_last_commit(tmp_path: Path) -> None:
    from acct2crm.app.consumer_gaps import CommitHoles, register_commit_holes

    async def run() -> tuple[int, Any]:
        app = make_app(Settings(home=tmp_path))
        consumer = _stalled(app)
        holes = CommitHoles(app, lambda _t, _p: 400, [TOPIC])
        register_commit_holes(app, holes)
        await app.on_before_shutdown.send()  # as App.on_stop sends it, fetcher stopped
        return holes.passed, consumer._new_offset(PART)

    assert asyncio.run(run()) == (199, 311)  # 101..299, then the acked 300..310


def _quiet(app: Any, committed: int) -> Any:
    """Committed at ``committed``; nothing acked since (the tail's acks lost, or read back)."""
    consumer = app.consumer
    consumer.assignment = lambda: {PART}
    consumer._committed_offset[PART] = committed
    consumer._acked[PART] = []
    app.topics._acking_topics.add(TOPIC)  # as an agent's stream does when the worker starts
    return consumer


def test_a_tail_the_ledger_handled_is_committed_without_a_next_message(tmp_path: Path) -> None:
    from acct2crm.app.consumer_gaps import CommitHoles

    async def run() -> list[Any]:
        app = make_app(Settings(home=tmp_path))
        consumer = _quiet(app, 100)
        holes = CommitHoles(app, lambda _t, _p: 120, [TOPIC])
        seen = [consumer._new_offset(PART)]  # Faust alone: nothing to commit, ever
        await holes.check()  # first sight: the acks may still come
        seen += [holes.passed, consumer._new_offset(PART)]
        await holes.check()  # still there: 100..120 passed
        seen += [holes.passed, consumer._new_offset(PART)]
        return seen

    assert asyncio.run(run()) == [None, 0, None, 21, 121]


def test_the_last_change_alone_is_committed_too(tmp_path: Path) -> None:
    """As on the real stack after a replay: the commit one short of the end."""
    from acct2crm.app.consumer_gaps import CommitHoles

    async def run() -> Any:
        app = make_app(Settings(home=tmp_path))
        consumer = _quiet(app, 41)
        holes = CommitHoles(app, lambda _t, _p: 41, [TOPIC])
        await holes.check()
        await holes.check()
        return holes.passed, consumer._new_offset(PART)

    assert asyncio.run(run()) == (1, 42)


def test_no_tail_when_the_ledger_is_at_the_commit_or_still_moving(tmp_path: Path) -> None:
    from acct2crm.app.consumer_gaps import CommitHoles

    async def run() -> list[int]:
        app = make_app(Settings(home=tmp_path))
        _quiet(app, 100)
        done = {"moving": 100}
        committed = CommitHoles(app, lambda _t, _p: 99, [TOPIC])  # all handled is committed
        unknown = CommitHoles(app, lambda _t, _p: None, [TOPIC])
        moving = CommitHoles(app, lambda _t, _p: done["moving"], [TOPIC])  # a flow goes on
        for step in range(3):
            done["moving"] = 100 + step
            for holes in (committed, unknown, moving):
                await holes.check()
        return [h.passed for h in (committed, unknown, moving)]

    assert asyncio.run(run()) == [0, 0, 0]


def test_when_the_worker_stops_a_tail_is_passed_at_once(tmp_path: Path) -> None:
    from acct2crm.app.consumer_gaps import CommitHoles

    async def run() -> Any:
        app = make_app(Settings(home=tmp_path))
        consumer = _quiet(app, 100)
        holes = CommitHoles(app, lambda _t, _p: 104, [TOPIC])
        await holes.check(final=True)
        return holes.passed, consumer._new_offset(PART)

    assert asyncio.run(run()) == (5, 105)
