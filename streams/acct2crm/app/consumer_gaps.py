"""Telling Faust's consumer about offsets the ledger read back itself.

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
"""

from __future__ import annotations

from typing import Any

from faust.types import TP

from acct2crm.app.ledger import Passed


def consumer_passes(app: Any) -> Passed:
    """A ledger's ``passed``: the worker's consumer counts the range as done."""

    async def passed(topic: str, partition: int, start: int, end: int) -> None:
        tp = TP(topic, partition)
        # a partition given away meanwhile: Faust dropped its bookkeeping, so adds none
        if end > start and tp in app.consumer.assignment():
            await app.consumer._add_gap(tp, start, end - 1)

    return passed
