"""Bench phase (e) picks tenants that spread over the partitions, so two workers share them."""

from __future__ import annotations

from pathlib import Path

from acct2crm.settings import Settings
from acct2crm.topic_partitions import tenant_partition
from devstack.bench_workers import bench_tenants, phase


def test_the_bench_tenants_land_in_four_different_partitions(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, change_partitions=4)
    chosen = bench_tenants(settings)
    assert len(chosen) == 4
    assert len({tenant_partition(settings, f"accounting_{t}") for t in chosen}) == 4


def test_with_one_partition_the_phase_says_why_it_is_not_measured(tmp_path: Path) -> None:
    [line] = phase(Settings(home=tmp_path, change_partitions=1))
    assert "not measured" in line and "change_partitions" in line
