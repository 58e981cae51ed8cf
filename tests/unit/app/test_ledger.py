"""The offset ledger: duplicates dropped, skipped offsets read back, in order."""

from __future__ import annotations

from typing import Any

from acct2crm.app.ledger import LostRange, OffsetLedger, RangeRead, ledger_key
from acct2crm.model.message import Message

TOPIC = "changes"


def msg(offset: int) -> Message:
    return Message(TOPIC, 0, offset, b"k", f"v{offset}".encode())


class Topic:
    def __init__(self, earliest: int = 0) -> None:
        self.reads: list[tuple[int, int]] = []
        self._earliest = earliest

    async def read(self, topic: str, partition: int, start: int, end: int) -> RangeRead:
        self.reads.append((start, end))
        return RangeRead([msg(o) for o in range(start, end)], end)

    async def earliest(self, topic: str, partition: int) -> int:
        return self._earliest


async def test_in_order_messages_pass_through() -> None:
    topic = Topic()
    table: dict[str, Any] = {}
    ledger = OffsetLedger(table, topic.read, topic.earliest)
    batch = await ledger.admit([msg(0), msg(1)])
    ledger.handled(batch)
    assert [m.offset for m in batch] == [0, 1]
    assert table == {ledger_key(TOPIC, 0): {"offset": 1}}
    assert topic.reads == []


async def test_redelivered_offsets_are_dropped() -> None:
    topic, table = Topic(), {ledger_key(TOPIC, 0): 5}
    ledger = OffsetLedger(table, topic.read, topic.earliest)
    assert [m.offset for m in await ledger.admit([msg(4), msg(5), msg(6)])] == [6]


async def test_a_skipped_offset_is_read_back_and_handled_first() -> None:
    topic, table = Topic(), {ledger_key(TOPIC, 0): 59}
    ledger = OffsetLedger(table, topic.read, topic.earliest)
    batch = await ledger.admit([msg(63), msg(62)])
    assert [m.offset for m in batch] == [60, 61, 62, 63]
    assert topic.reads == [(60, 62)]


async def test_first_start_begins_at_the_earliest_offset() -> None:
    topic = Topic(earliest=3)
    ledger = OffsetLedger({}, topic.read, topic.earliest)
    assert [m.offset for m in await ledger.admit([msg(5)])] == [3, 4, 5]


async def test_nothing_is_remembered_until_handled() -> None:
    topic = Topic()
    table: dict[str, Any] = {}
    ledger = OffsetLedger(table, topic.read, topic.earliest)
    await ledger.admit([msg(0)])
    assert table == {}


async def no_sleep(seconds: float) -> None:
    return None


class ShortReads(Topic):
    """A topic whose reads come back short: one message, an empty poll, an error, then one."""

    def __init__(self, earliest: int = 0) -> None:
        super().__init__(earliest)
        self.script = ["one", "empty", "error", "one", "all"]

    async def read(self, topic: str, partition: int, start: int, end: int) -> RangeRead:
        self.reads.append((start, end))
        step = self.script.pop(0) if self.script else "all"
        if step == "error":
            raise ConnectionError("broker unreachable")
        if step == "empty":
            return RangeRead([], start)
        last = start + 1 if step == "one" else end
        return RangeRead([msg(o) for o in range(start, last)], last)


async def test_a_short_empty_or_failed_read_back_is_retried_until_the_gap_is_whole() -> None:
    topic, table = ShortReads(), {ledger_key(TOPIC, 0): 9}
    ledger = OffsetLedger(table, topic.read, topic.earliest, sleep=no_sleep)
    batch = await ledger.admit([msg(15)])
    assert [m.offset for m in batch] == [10, 11, 12, 13, 14, 15]
    assert topic.reads == [(10, 15), (11, 15), (11, 15), (11, 15), (12, 15)]
    assert ledger.lost == [] and ledger.state.reason is None


async def test_a_gap_that_never_comes_back_is_retried_not_skipped() -> None:
    class Silent(Topic):
        async def read(self, topic: str, partition: int, start: int, end: int) -> RangeRead:
            self.reads.append((start, end))
            return RangeRead([], start)

    topic = Silent()
    waits: list[str | None] = []
    ledger = OffsetLedger({ledger_key(TOPIC, 0): 0}, topic.read, topic.earliest)

    async def nap(seconds: float) -> None:
        waits.append(ledger.state.reason)
        if len(waits) == 5:
            raise TimeoutError("the test stops waiting")

    ledger._sleep = nap
    try:
        await ledger.admit([msg(3)])
        raise AssertionError("the gap 1..2 was passed over")
    except TimeoutError:
        pass
    assert len(topic.reads) == 5
    assert waits[-1] == "offsets 1..2 of changes not read back yet"  # on the status page


async def test_offsets_below_the_log_start_are_reported_and_the_rest_is_read() -> None:
    topic, table = Topic(earliest=7), {ledger_key(TOPIC, 0): 2}
    reported: list[LostRange] = []

    async def report(gone: LostRange) -> None:
        reported.append(gone)

    ledger = OffsetLedger(table, topic.read, topic.earliest, report_lost=report)
    batch = await ledger.admit([msg(9)])
    assert [m.offset for m in batch] == [7, 8, 9]
    assert reported == ledger.lost == [LostRange(TOPIC, 0, 3, 7)]
    assert "offsets 3..6 of changes" in reported[0].describe()
    assert topic.reads == [(7, 9)]


async def test_a_seek_below_the_log_start_that_lands_past_the_range_is_not_a_read() -> None:
    """Retention moved the log start between the check and the read: found on the next try."""

    class Moving(Topic):
        async def read(self, topic: str, partition: int, start: int, end: int) -> RangeRead:
            self.reads.append((start, end))
            self._earliest = 5  # the log start moved; the read lands on it
            raise LookupError("offset out of range")

    topic, reported = Moving(earliest=0), []

    async def report(gone: LostRange) -> None:
        reported.append(gone)

    ledger = OffsetLedger({ledger_key(TOPIC, 0): 0}, topic.read, topic.earliest,
                          report_lost=report, sleep=no_sleep)
    batch = await ledger.admit([msg(5)])
    assert [m.offset for m in batch] == [5]
    assert reported == [LostRange(TOPIC, 0, 1, 5)]
