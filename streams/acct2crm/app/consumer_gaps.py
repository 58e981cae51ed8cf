"""Letting Faust's consumer commit past offsets the ledger knows are handled.

Faust commits a partition only up to the first offset it has not seen acked,
and not at all while the lowest acked offset lies more than one past its last
commit. When it skips messages (after a restart or a rewind, see ledger.py)
or starts past a partition's last ones (catch_up.py), the ledger reads those
back and the agent handles them, but the consumer never saw them: its commit
stood still until the next restart, which then re-read everything handled
since, while the group's lag, as Kafka reports it, kept growing. On the bench
stack a worker skipped 45 offsets of each partition at a start; 27 s later
the next start re-read 3,469 changes of one partition from the first skipped
offset on (each dropped by the ledger, yet fetched and checked again). With
the range passed, a start after such a skip re-read none.

Faust keeps a set of offsets it counts as done without an ack (its "gaps",
meant for offsets a compacted or transactional topic never delivers). A
range the ledger read back is added there, so the next commit can pass it
once the offsets after it are acked. The ledger stays the record of what
was handled; this only lets the consumer's commit follow it.

Faust also loses acks it was given. Right after a rewind, the acks of the
first 100-450 offsets handled never reached its list, though the agent
handled them and nothing was read back: in 3 of 13 replays of 20,000 changes
on the bench stack its commit stood ~19,500 offsets behind the ledger, up
to and after the worker's stop, and the next start read them all again. So
a watcher (``CommitHoles``) looks at each partition's commit every second:
when the lowest acked offset has stood more than one past the commit for two
checks running (or at all, when the worker stops), the offsets in between
that the ledger records as handled are passed the same way. In 8 replays
after that, every stop left the commit at the end.

A hole can also be the tail: offsets handled past the commit with nothing
acked after them. Faust commits only from acks, so after a replay on the
real stack two partitions' commits stood one offset short of the end for as
long as no change came (a CI run's replay test saw it). The watcher acks the
ledger's last offset for it and passes the rest, and Faust's next commit
takes the tail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

import faust
from faust.types import TP, Message

from acct2crm.app.ledger import Passed

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0


def consumer_passes(app: Any) -> Passed:
    """A ledger's ``passed``: the worker's consumer counts the range as done."""

    async def passed(topic: str, partition: int, start: int, end: int) -> None:
        tp = TP(topic, partition)
        # a partition given away meanwhile: Faust dropped its bookkeeping, so adds none
        if end > start and tp in app.consumer.assignment():
            await app.consumer._add_gap(tp, start, end - 1)

    return passed


# (topic, partition) -> the last offset handled there, per the ledger (None: none yet)
Done = Callable[[str, int], int | None]


class CommitHoles:
    """Passes offsets the ledger handled but Faust never counted, once they hold its
    commit back across two checks (an ack still on its way would not)."""

    def __init__(self, app: Any, done: Done, topics: Collection[str]) -> None:
        self._app = app  # its consumer exists once the worker starts
        self._done = done
        self._topics = set(topics)
        self._seen: dict[TP, tuple[int, int]] = {}  # the hole each partition had last time
        self.passed = 0  # offsets passed so far, for the log and the tests

    async def check(self, *, final: bool = False) -> None:
        """``final``: the worker stops and nothing more is acked; any hole is passed now,
        before Faust's last commit."""
        consumer = self._app.consumer
        holes: dict[TP, tuple[int, int]] = {}
        for tp in consumer.assignment():
            if tp.topic not in self._topics:
                continue
            committed, acked = consumer._committed_offset.get(tp), consumer._acked.get(tp)
            if committed is None:
                continue
            if not acked:
                await self._tail(consumer, tp, committed, holes, final)
                continue
            head = min(acked)
            if head - committed <= 1:
                continue  # Faust commits past this itself
            holes[tp] = (committed, head)
            if self._seen.get(tp) != holes[tp] and not final:
                continue  # new: its acks may still come
            done = self._done(tp.topic, tp.partition)
            if done is None or done < committed:
                continue  # nothing the ledger vouches for
            end = min(head - 1, done)
            # Faust counts its last commit as done and adds from one past it
            await consumer._add_gap(tp, committed + 1, end)
            self.passed += end - committed
            log.info("offsets %s..%s of %s held the consumer's commit back, unacked by it "
                     "though handled: passed", committed + 1, end, tuple(tp))
        self._seen = holes

    async def _tail(self, consumer: Any, tp: TP, committed: int,
                    holes: dict[TP, tuple[int, int]], final: bool) -> None:
        """Offsets the ledger handled from the commit on, with nothing acked after them.

        Faust commits only from acks, so such a tail (the last change(s) before a
        quiet spell, read back or with their acks lost) stood uncommitted until
        the next change came: Kafka showed the group a change or two behind, and
        a restart read them again. The ledger's last offset is acked for it, the
        rest passed, and Faust's next commit takes them all.
        """
        done = self._done(tp.topic, tp.partition)
        if done is None or done < committed:
            return  # nothing handled past the commit
        holes[tp] = (committed, -done)  # a tail, told apart from a hole by the sign
        if self._seen.get(tp) != holes[tp] and not final:
            return  # new: its acks may still come
        await consumer._add_gap(tp, committed + 1, done - 1)
        consumer.ack(Message(tp.topic, tp.partition, done, 0.0, 0, None, None, None, None,
                             tp=tp))
        self.passed += done + 1 - committed
        log.info("offsets %s..%s of %s were handled, but nothing acked after them: "
                 "passed, so the consumer's commit reaches them", committed, done, tuple(tp))


async def _check(holes: CommitHoles, *, final: bool = False) -> None:
    try:
        await holes.check(final=final)
    except Exception:  # bookkeeping only: the ledger still guards every offset
        log.exception("could not check the consumer's commit")


def register_commit_holes(app: faust.App, holes: CommitHoles) -> None:
    @app.timer(interval=CHECK_EVERY_S, name="commit-holes")  # type: ignore[untyped-decorator]
    async def pass_commit_holes() -> None:
        await _check(holes)

    # after the fetcher stopped, before the consumer's last commit (a replay that ended
    # a moment before `acct2crm down` otherwise left its whole range to be read again)
    async def pass_before_the_last_commit(
        _app: Any, /, *_args: Any, signal: Any, **_kwargs: Any
    ) -> None:
        await _check(holes, final=True)

    app.on_before_shutdown.connect(pass_before_the_last_commit)
