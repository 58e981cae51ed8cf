"""A worker table's ``get`` reads its store once and answers as Faust's would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faust import streams

from acct2crm.app.table_reads import read_once
from acct2crm.app.topology import build_topology
from acct2crm.settings import Settings


@pytest.fixture(autouse=True)
def no_event() -> None:
    streams._current_event.set(None)


def positions(tmp_path: Path, store: str) -> Any:
    return build_topology(Settings(home=tmp_path, table_store=store)).row_to_position


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_get_answers_a_value_or_the_default(tmp_path: Path, store: str) -> None:
    table = positions(tmp_path, store)
    table.data["default\x1f7"] = {"lsn": 42, "tx_id": 3, "ts_ms": 1}  # the store: no changelog here
    assert table.get("default\x1f7") == {"lsn": 42, "tx_id": 3, "ts_ms": 1}
    assert table.get("default\x1f8") is None
    assert table.get("default\x1f8", "none") == "none"
    assert "default\x1f7" in table and "default\x1f8" not in table


def test_get_asks_the_rocksdb_store_once_without_a_membership_test(tmp_path: Path) -> None:
    table = positions(tmp_path, "rocksdb://")
    table.data["default\x1f1"] = {"lsn": 5, "tx_id": None, "ts_ms": None}
    store = table.data
    reads: list[bytes] = []
    real_get = store._get

    def counted(key: bytes) -> Any:
        reads.append(key)
        return real_get(key)

    def refused(_key: bytes) -> bool:
        raise AssertionError("get asked the store whether the key is there first")

    store._get = counted
    store._contains = refused
    assert table.get("default\x1f1")["lsn"] == 5
    assert table.get("default\x1f2") is None
    assert len(reads) == 2


def test_a_table_with_a_default_keeps_faust_get(tmp_path: Path) -> None:
    app = build_topology(Settings(home=tmp_path)).app
    table = app.Table("counts", default=int, partitions=1)
    with pytest.raises(ValueError, match="default"):
        read_once(table)
