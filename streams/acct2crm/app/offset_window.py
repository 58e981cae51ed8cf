"""Which command offsets are out with a tenant lane, and how far all are done.

Tenant lanes (lanes.py) finish messages out of offset order: tenant B's
command at offset 7 may be done while tenant A's at offset 5 still waits for
A's CRM. The ledger may only ever say "everything up to here is done", so
per partition this window keeps what it handed out and not yet saw done,
and the ledger records the end of the contiguous done prefix.

A lane holding more than it may keep in memory stops keeping offsets one by
one: it puts a *hold* at its first offset not kept, and the prefix stops
there until the lane has read those messages back and handed them in.

Pure bookkeeping, no I/O: the caller writes the prefix to the ledger.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from acct2crm.model.message import Message

TP = tuple[str, int]


@dataclass
class _Partition:
    next: int  # every offset below was admitted (or was done before we started)
    recorded: int  # the last prefix given out to be written to the ledger
    pending: set[int] = field(default_factory=set)  # admitted, kept, not done
    holds: dict[Hashable, int] = field(default_factory=dict)  # lane -> first offset not kept

    def prefix(self) -> int:
        """The highest offset such that it and all before it are done."""
        return min((*self.pending, *self.holds.values(), self.next)) - 1


class OffsetWindow:
    def __init__(self) -> None:
        self._parts: dict[TP, _Partition] = {}

    def next(self, topic: str, partition: int) -> int | None:
        """The next offset to admit on a partition this window follows, else None."""
        part = self._parts.get((topic, partition))
        return None if part is None else part.next

    def admit(self, messages: Sequence[Message]) -> list[Message]:
        """The messages not handed out before, in order; the window moves past them.

        A redelivered offset that a lane still holds (or already did) is dropped
        here: it must not be applied twice while it is in flight. ``messages``
        come from the ledger, in order and without gaps from its last offset.
        """
        fresh: list[Message] = []
        for message in messages:
            if message.offset is None:
                fresh.append(message)
                continue
            tp = (message.topic, message.partition or 0)
            part = self._parts.get(tp)
            if part is None:
                part = self._parts[tp] = _Partition(message.offset, message.offset - 1)
            if message.offset < part.next:
                continue
            part.next = message.offset + 1
            fresh.append(message)
        return fresh

    def keep(self, tp: TP, offset: int) -> None:
        """A lane keeps this admitted offset in memory until it is done."""
        self._parts[tp].pending.add(offset)

    def hold(self, tp: TP, lane: Hashable, offset: int) -> None:
        """A lane keeps nothing of its own from ``offset`` on; the prefix waits there."""
        self._parts[tp].holds[lane] = offset

    def release(self, tp: TP, lane: Hashable) -> None:
        part = self._parts.get(tp)
        if part is not None:
            part.holds.pop(lane, None)

    def done(self, tp: TP, offsets: Iterable[int]) -> int | None:
        """Mark offsets done; the new prefix to record if it moved, else None."""
        part = self._parts.get(tp)
        if part is None:
            return None  # the partition was let go meanwhile
        part.pending.difference_update(offsets)
        return self._moved(part)

    def settled(self, tp: TP) -> int | None:
        """The new prefix if a hold moved or went; else None."""
        part = self._parts.get(tp)
        return None if part is None else self._moved(part)

    @staticmethod
    def _moved(part: _Partition) -> int | None:
        prefix = part.prefix()
        if prefix <= part.recorded:
            return None
        part.recorded = prefix
        return prefix

    def forget(self, tp: TP) -> None:
        """The partition went to another worker: start from the ledger if it comes back."""
        self._parts.pop(tp, None)

    def kept(self, tp: TP) -> int:
        part = self._parts.get(tp)
        return 0 if part is None else len(part.pending)

    def partitions(self) -> list[TP]:
        return list(self._parts)
