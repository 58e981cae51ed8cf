"""A command goes to the partition of the change it came from (where its tenant is).

The change agent's event names that partition, but the idle read-back
(catch_up.py) handles changes it read itself, outside any event. So the
router notes the partition of the change it handles, and the commands'
producer sends there; with one partition this is always 0.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

import faust

from acct2crm.app.direct_send import direct_producer

if TYPE_CHECKING:  # delivery.py imports the pipeline, which imports this module
    from acct2crm.app.delivery import Produce

CHANGE_PARTITION: ContextVar[int | None] = ContextVar("acct2crm_change_partition", default=None)


def change_partition() -> int | None:
    """The handled change's partition (else the current event's)."""
    partition = CHANGE_PARTITION.get()
    if partition is None:
        event = faust.current_event()
        partition = event.message.partition if event is not None else None
    return partition


def co_partitioned(topic: faust.TopicT) -> Produce:
    """Send to the handled change's partition (else the current event's)."""
    return direct_producer(topic, change_partition)
