"""Where a table write goes when the tables have many partitions (many tenants).

Faust sends a table write to the partition of the event being handled, and
refuses a write made outside a stream. Some writes are: the seeder fills a
tenant's codes from a timer, the idle read-back (catch_up.py) handles messages
it read itself. Their keys say where they belong: a ledger key names its
partition, every other key starts with its tenant, whose partition is the one
``PartitionRouting`` gives its database. Inside a stream the event's partition
is kept (reads look there), and it is the same one.

The ``rocksdb://`` store has the same need one level down: it keeps one
database per partition and picks it by the current event, asserting that
there is one. Besides the writes above, a tenant lane's event can be gone by
the time it writes (Faust holds the current event by a weak reference, and
the lane's is replaced as newer batches arrive): every such write failed,
and its change became a failed result and a dead letter although the CRM had
it. So the store's writes are placed the same way.
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

    def __call__(self, key: Any) -> int:
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


def place_store_writes(table: Any, partitions: TablePartitions | None) -> None:
    """Make a ``rocksdb://`` store of ``table`` place writes made without an event by their
    key (``partitions``; None: one partition, 0), not fail on them."""
    new_store = table._new_store

    def made() -> Any:
        store = new_store()
        if type(store).__module__ == "faust.stores.rocksdb":  # rocksdict is optional
            store._set = _placed_set(store, partitions)
        return store

    table._new_store = made


def _placed_set(store: Any, partitions: TablePartitions | None) -> Callable[[bytes, Any], None]:
    def _set(key: bytes, value: Any) -> None:
        event = current_event()
        if event is not None:
            partition = int(event.message.partition)
        elif partitions is not None:  # the key's (or TypeError); decoded only here
            partition = partitions(store._decode_key(key))
        else:
            partition = 0
        store._key_index[key] = partition
        store._db_for_partition(partition).put(key, value)

    return _set
