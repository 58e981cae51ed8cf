"""Bench phase (f) measures two tenants that share a partition (one worker, one lane each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acct2crm.settings import Settings
from acct2crm.topic_partitions import tenant_partition
from devstack.bench_isolation import pair


@pytest.mark.parametrize("partitions", [1, 4, 12])
def test_the_two_bench_tenants_share_one_partition(tmp_path: Path, partitions: int) -> None:
    settings = Settings(home=tmp_path, change_partitions=partitions)
    a, b = pair(settings)
    assert a != b
    assert tenant_partition(settings, f"accounting_{a}") == tenant_partition(
        settings, f"accounting_{b}")
