"""The offset ledger: duplicates dropped, skipped offsets read back, in order."""

from __future__ import annotations

from typing import Any

from acct2crm.app.ledger import OffsetLedger, ledger_key
from acct2crm.app.pipeline import Message

TOPIC = "changes"


def msg(offset: int) -> Message:
    return Message(TOPIC, 0, offset, b"k", f"v{offset}".encode())


class Topic:
    def __init__(self, earliest: int = 0) -> None:
        self.reads: list[tuple[int, int]] = []
        self._earliest = earliest

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        self.reads.append((start, end))
        return [msg(o) for o in range(start, end)]

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
