"""Faust settings of the worker app that the product's guarantees or speed rest on."""

from __future__ import annotations

from pathlib import Path

from acct2crm.app.topology import make_app
from acct2crm.settings import Settings


def test_no_standby_tables_by_default_and_the_setting_reaches_faust(tmp_path: Path) -> None:
    # a standby copy of another worker's tables cost 2-3x the CPU per change (bench (e))
    assert make_app(Settings(home=tmp_path)).conf.table_standby_replicas == 0
    chosen = Settings(home=tmp_path, table_standby_replicas=1)
    assert make_app(chosen).conf.table_standby_replicas == 1


def test_a_rebalance_does_not_wait_for_unacknowledged_events(tmp_path: Path) -> None:
    # one event never acknowledged held the group for good (the SIGKILL test over tenants)
    assert make_app(Settings(home=tmp_path)).conf.stream_wait_empty is False


def test_each_worker_keeps_its_tables_in_its_own_folder(tmp_path: Path) -> None:
    assert Path(make_app(Settings(home=tmp_path)).conf.datadir) == tmp_path / "worker"
    own = Settings(home=tmp_path, worker_data_dir=tmp_path / "worker-2" / "data")
    assert Path(make_app(own).conf.datadir) == tmp_path / "worker-2" / "data"
