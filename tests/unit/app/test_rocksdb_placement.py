"""The worker's tables on ``rocksdb://``: a write without a current event (the idle
read-back, the seeder, a tenant lane whose event was collected) lands in its key's
partition instead of failing; inside a stream the event's partition is kept."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest
import rocksdict  # noqa: F401 - in the dev install; without it this fails, never skips
from faust import streams

from acct2crm.app.topology import build_topology
from acct2crm.model.crm import CrmRecord
from acct2crm.settings import Settings
from acct2crm.sink.code_cache import CodeCache

PARTITIONS = 4


class _Message:
    def __init__(self, partition: int) -> None:
        self.partition = partition


class _Event:
    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


def code_store(tmp_path: Path, partitions: int) -> Any:
    settings = Settings(home=tmp_path, table_store="rocksdb://", change_partitions=partitions)
    table: Any = build_topology(settings).code_to_customer
    placing = getattr(table, "acct2crm_partitions", None)
    if placing is not None:
        placing.tenant_partition = {"acme": 3, "default": 1}.get
    return table.data


def record(code: str) -> CrmRecord:
    return CrmRecord(id=1, fields={"code": code, "name": "Customer"}, external_ref="acme:1")


def partitions_holding(store: Any) -> list[int]:
    """The partitions whose database holds a key (the store opens one per partition used)."""
    return sorted(p for p, db in store._dbs.items() if any(True for _ in db.keys()))  # noqa: SIM118


@pytest.fixture(autouse=True)
def no_event() -> None:
    streams._current_event.set(None)


def test_a_write_outside_a_stream_goes_to_its_tenant_partition(tmp_path: Path) -> None:
    store = code_store(tmp_path, PARTITIONS)
    CodeCache(store, "acme").remember(record("K1"))
    assert partitions_holding(store) == [3]
    assert CodeCache(store, "acme").get("k1") is not None


def test_a_lane_whose_event_was_collected_still_writes(tmp_path: Path) -> None:
    store = code_store(tmp_path, PARTITIONS)
    event = _Event(3)
    streams._current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    del event
    gc.collect()
    assert streams.current_event() is None  # what a lane met after newer batches came
    CodeCache(store, "acme").remember(record("K2"))
    assert partitions_holding(store) == [3]


def test_inside_a_stream_the_event_partition_is_kept(tmp_path: Path) -> None:
    store = code_store(tmp_path, PARTITIONS)
    event = _Event(2)
    streams._current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    CodeCache(store, "acme").remember(record("K3"))
    assert partitions_holding(store) == [2]


def test_one_partition_writes_to_partition_zero(tmp_path: Path) -> None:
    store = code_store(tmp_path, 1)
    CodeCache(store, "default").remember(record("K4"))
    assert partitions_holding(store) == [0]


def test_a_key_of_an_unknown_tenant_is_refused_clearly(tmp_path: Path) -> None:
    store = code_store(tmp_path, PARTITIONS)
    with pytest.raises(TypeError, match="no partition for table key"):
        CodeCache(store, "gone").remember(record("K5"))
    assert partitions_holding(store) == []
