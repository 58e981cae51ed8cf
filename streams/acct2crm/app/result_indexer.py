"""The worker keeps the result index (result_index.py) up to date, every second.

So ``acct2crm status`` and ``history`` find it current and read no tail of
their own; when the worker is down they catch up themselves. Of the workers
sharing a state folder, one indexes (index_lease.py). While results are
being written (a burst, a replay) it indexes every ``BUSY_INTERVAL_S`` only:
the thread takes the interpreter's lock from the agents, and a reader of the
index (``status``, the status page) reads the tail it finds unindexed itself. The index reads
Kafka with a blocking client, so it runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import faust
from confluent_kafka import Consumer

from acct2crm import result_index
from acct2crm.app.activity import ACTIVITY
from acct2crm.app.index_lease import IndexLease
from acct2crm.settings import Settings

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
BUSY_INTERVAL_S = 10.0
BUSY_S = 1.0  # a result this recent: the agents are at work


class IndexPace:
    """Whether this tick indexes: always when the agents are quiet, else every
    ``BUSY_INTERVAL_S``."""

    def __init__(self, last_result_at: Callable[[], float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._last_result_at = last_result_at
        self._clock = clock
        self._indexed_at = clock()  # a worker starting busy (a replay) waits its turn too

    def due(self) -> bool:
        now = self._clock()
        busy = now - self._last_result_at() < BUSY_S
        if busy and now - self._indexed_at < BUSY_INTERVAL_S:
            return False
        self._indexed_at = now
        return True


def register_result_indexer(app: faust.App, settings: Settings) -> None:
    consumer: list[Consumer] = []  # one, made on first use, reused every second
    lease = IndexLease(result_index.index_path(settings).with_suffix(".lock"))
    pace = IndexPace(lambda: ACTIVITY.last_result_at)

    def catch_up() -> None:
        if not lease.held():  # another worker of this state folder indexes
            return
        if not pace.due():
            return
        if not consumer:
            consumer.append(result_index.reader(settings))
        result_index.catch_up(settings, consumer=consumer[0])

    @app.timer(INTERVAL_S, name="index_results")  # type: ignore[untyped-decorator]
    async def index_results() -> None:
        try:
            await asyncio.to_thread(catch_up)
        except Exception:  # never let the timer die: the next tick tries again
            log.exception("indexing the results topic failed; trying again")
