"""The worker's records go straight to Faust's producer, not through ``topic.send``.

``topic.send`` wraps every record in Faust's message and future objects,
reports it to Faust's sensors and calls back once it is acknowledged: about a
fifth of the worker's CPU in a replay, which writes one result per change.
The producer's own ``send`` hands back the broker's acknowledgement future,
which is all ``Delivery`` (delivery.py) waits for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import faust

if TYPE_CHECKING:  # delivery.py imports the pipeline, which imports this module
    from acct2crm.app.delivery import Produce


def first_partition() -> int | None:
    """Results and dead letters: their topics have one partition, which every reader reads
    (and naming it spares the producer hashing each key)."""
    return 0


def direct_producer(
    topic: faust.TopicT, partition_of: Callable[[], int | None] = first_partition
) -> Produce:
    """Send to ``topic``, to the partition ``partition_of`` names; the ack's future."""
    name = topic.get_topic_name()

    async def produce(key: bytes | None, value: bytes) -> Awaitable[Any]:
        return await topic.app.producer.send(
            name, key, value, partition=partition_of(), timestamp=None, headers=None
        )

    return produce
