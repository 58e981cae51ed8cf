"""Bench phase (e) picks tenants that spread over the partitions, so two workers share them."""

from __future__ import annotations

from pathlib import Path

import pytest

from acct2crm.settings import Settings
from acct2crm.topic_partitions import tenant_partition
from devstack import bench_worker_group, bench_workers
from devstack.bench_workers import (
    Drain,
    _warm_stores,
    bench_tenants,
    captured,
    drain_rate,
    flowing_rate,
    phase,
    summary,
)


def test_the_bench_tenants_land_in_four_different_partitions(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, change_partitions=4)
    chosen = bench_tenants(settings)
    assert len(chosen) == 4
    assert len({tenant_partition(settings, f"accounting_{t}") for t in chosen}) == 4


def test_with_one_partition_the_phase_says_why_it_is_not_measured(tmp_path: Path) -> None:
    [line] = phase(Settings(home=tmp_path, change_partitions=1))
    assert "not measured" in line and "change_partitions" in line


def test_the_drain_is_timed_from_the_first_result_after_the_group_settled() -> None:
    # 1,000 ms: the group settled; 500 came before (one worker alone), 1,500 first after
    rate, first_s, window_s, early = drain_rate([500, 1_500, 2_000, 2_500, 3_500], 1_000)
    assert rate == 3 / 2.0  # three results after the first, over 2 s
    assert first_s == 0.5
    assert window_s == 2.5
    assert early == 1


def test_a_drain_with_fewer_than_two_results_after_the_group_settled_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than two"):
        drain_rate([500, 900, 1_200], 1_000)


def test_the_burst_counts_as_captured_only_when_every_partition_holds_its_share() -> None:
    wanted = {0: 1_000, 3: 1_000}
    assert captured({0: 10, 3: 7}, {0: 1_010, 3: 1_009}, wanted)
    assert not captured({0: 10, 3: 7}, {0: 1_010, 3: 1_006}, wanted)
    assert not captured({0: 10}, {0: 1_010}, wanted)


def test_every_tenant_flowing_is_timed_from_the_last_first_result_to_the_first_last() -> None:
    # settled at 1,000 ms; tenant a drains 1,000..5,000 (one result before settling),
    # b starts late (its worker restored longer) at 3,000 and ends at 7,000
    per_tenant = {"a": [900, 1_000, 2_000, 3_000, 4_000, 5_000],
                  "b": [3_000, 3_500, 4_000, 5_000, 6_000, 7_000]}
    rate, seconds = flowing_rate(per_tenant, 1_000)
    assert seconds == 2.0  # 3,000 -> 5,000: both flowing
    assert rate == 5 / 2.0  # a: 4,000 and 5,000; b: 3,500, 4,000, 5,000


def test_no_moment_with_every_tenant_flowing_gives_no_rate() -> None:
    assert flowing_rate({"a": [1_000, 2_000], "b": [3_000, 4_000]}, 0) == (0.0, 0.0)
    assert flowing_rate({"a": [1_000, 2_000], "b": [3_000]}, 0) == (0.0, 0.0)


def _side(rate: float, cpu: tuple[float, ...], load: float, flowing: float = 0.0) -> Drain:
    return Drain(rate=rate, first_s=1.0, window_s=4.0, cpu_s=cpu, load=load, early=int(rate),
                 others_s=(("crm", 0.4), ("kafka", 2.0)), flowing=flowing or rate * 1.1,
                 flowing_s=2.0)


def test_the_summary_gives_the_ratio_the_cpu_of_each_worker_the_load_and_end_to_end() -> None:
    ones = [_side(400.0, (3.0,), 2.0), _side(500.0, (3.2,), 2.5), _side(450.0, (2.8,), 3.0)]
    twos = [_side(800.0, (1.6, 1.8), 2.2), _side(900.0, (1.4, 1.6), 2.6),
            _side(700.0, (1.5, 1.7), 3.4)]
    flowing, alone, cpu, e2e = summary("(e)", [0, 1, 2, 3], ones, twos, [(300.0, 310.0)])
    assert "rounds 1/2 workers: 440/880, 550/990, 495/770" in flowing
    assert "880 vs 495 changes/s = 1.78x (target >= 1.6x)" in flowing
    assert "rounds: 400/800, 500/900, 450/700" in alone
    assert "800 vs 450 changes/s = 1.78x" in alone
    assert "median 800 results came before the second worker joined" in alone
    assert "1 worker 3.0 s over 3.0 s (1.00 of a core; crm 0.13; kafka 0.67)" in cpu
    assert "2 workers 1.5+1.7 s over 3.0 s (0.50+0.57 of a core; crm 0.13" in cpu
    assert "load average 2.0-3.4" in cpu
    assert "310 vs 300 changes/s = 1.03x" in e2e


def test_without_the_end_to_end_figure_the_summary_has_two_lines() -> None:
    side = [_side(400.0, (3.0,), 2.0)]
    assert len(summary("(e)", [0, 1], side, side, [])) == 3


def test_a_side_that_never_had_every_tenant_flowing_is_said_not_measured() -> None:
    side = [_side(400.0, (3.0,), 2.0, flowing=0.0)]
    never = [Drain(rate=400.0, first_s=1.0, window_s=4.0, cpu_s=(3.0,), load=2.0)]
    assert "not measured" in summary("(e)", [0, 1], side, never, [])[0]


def _record_group_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def members(_s: Settings, n: int) -> float:
        calls.append(f"members {n}")
        return 0.0

    def burst(_s: Settings, _t: list[str], n: int) -> float:
        calls.append(f"burst {n}")
        return 1.0

    monkeypatch.setattr(bench_worker_group, "stop_all", lambda _s: calls.append("stop"))
    monkeypatch.setattr(bench_worker_group, "start", lambda _s, n: calls.append(f"start {n}"))
    monkeypatch.setattr(bench_worker_group, "wait_members", members)
    monkeypatch.setattr(bench_workers, "burst_rate", burst)
    return calls


def test_rocksdb_stores_are_brought_up_to_date_by_two_workers_then_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _record_group_calls(monkeypatch)
    settings = Settings(home=tmp_path, change_partitions=4, table_store="rocksdb://")
    assert _warm_stores(settings, ["a", "b"]) is True
    assert calls == ["stop", "start 2", "members 2", "burst 5",
                     "stop", "start 1", "members 1", "burst 5"]


def test_memory_stores_get_no_warm_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record_group_calls(monkeypatch)
    assert _warm_stores(Settings(home=tmp_path, change_partitions=4), ["a"]) is False
    assert calls == []


def test_before_a_round_with_two_the_second_worker_catches_up_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack import workers

    calls = _record_group_calls(monkeypatch)
    monkeypatch.setattr(workers, "start_extra", lambda _s, i: calls.append(f"start worker {i}"))
    bench_workers._second_catches_up(Settings(home=tmp_path, change_partitions=4), ["a"])
    # alone (worker 1 stopped), so every partition is its own while it restores
    assert calls == ["stop", "start worker 2", "members 1", "burst 1"]
