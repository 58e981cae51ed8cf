"""The worker keeps the result index (result_index.py) up to date, every second.

So ``acct2crm status`` and ``history`` find it current and read no tail of
their own; when the worker is down they catch up themselves. Of the workers
sharing a state folder, one indexes (index_lease.py). The index reads
Kafka with a blocking client, so it runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from confluent_kafka import Consumer

from acct2crm import result_index
from acct2crm.app.index_lease import IndexLease
from acct2crm.settings import Settings

log = logging.getLogger(__name__)

INTERVAL_S = 1.0


def register_result_indexer(app: faust.App, settings: Settings) -> None:
    consumer: list[Consumer] = []  # one, made on first use, reused every second
    lease = IndexLease(result_index.index_path(settings).with_suffix(".lock"))

    def catch_up() -> None:
        if not lease.held():  # another worker of this state folder indexes
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
