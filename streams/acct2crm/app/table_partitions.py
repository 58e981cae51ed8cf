"""Where a table write goes when the tables have many partitions (many tenants).

Faust sends a table write to the partition of the event being handled, and
refuses a write made outside a stream. Some writes are: the seeder fills a
tenant's codes from a timer, the idle read-back (catch_up.py) handles messages
it read itself. Their keys say where they belong: a ledger key names its
partition, every other key starts with its tenant, whose partition is the one
``PartitionRouting`` gives its database. Inside a stream the event's partition
is kept (reads look there), and it is the same one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faust.streams import current_event

from acct2crm.model.keys import SEP

TenantPartition = Callable[[str], int | None]  # tenant id -> its partition (None: unknown)


def _none(_tenant: str) -> int | None:
    return None


class TablePartitions:
    """The partition of a key of one table; ``tenant_partition`` is set once tenants are known."""

    def __init__(self, *, ledger: bool = False) -> None:
        self.ledger = ledger  # keys are "topic<SEP>partition" (ledger.py)
        self.tenant_partition: TenantPartition = _none

    def of_key(self, key: str) -> int | None:
        if self.ledger:  # "topic<SEP>partition", or a lane's "topic<SEP>partition<SEP>tenant"
            fields = key.split(SEP)
            return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
        head, sep, _ = key.partition(SEP)
        if not sep:
            return None
        return self.tenant_partition(head)

    def __call__(self, key: Any) -> int | None:
        event = current_event()
        if event is not None:
            return int(event.message.partition)
        found = self.of_key(str(key))
        if found is None:
            raise TypeError(f"no partition for table key {key!r} outside of a stream")
        return found


def partition_by_key(table: Any, partitions: TablePartitions) -> None:
    """Make ``table`` place writes with ``partitions`` (an instance attribute wins)."""
    table.partition_for_key = partitions
    table.acct2crm_partitions = partitions
