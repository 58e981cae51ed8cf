"""``acct2crm bench``: how long a change takes from commit to CRM, on a running stack.

Inserts N customers at a steady rate, one transaction each, and reads their
results: latency = the result's ``applied_at`` (after the CRM answered) minus
the commit time Debezium reports (``source.ts_ms``), both from this machine's
clock. A second phase commits a burst and times how long the pipeline takes
to drain it (throughput). Prints the figures; never part of the test suite.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from acct2crm.settings import Settings
from devstack.demo import _results_end, run_tag, wait_for_results


@dataclass(frozen=True)
class BenchFigures:
    changes: int
    rate_per_s: float
    median_ms: float
    p95_ms: float
    max_ms: float
    burst: int
    burst_drain_s: float

    def lines(self) -> list[str]:
        return [
            f"steady load: {self.changes} inserts at {self.rate_per_s:g}/s",
            f"  commit → CRM latency: median {self.median_ms:.0f} ms, "
            f"p95 {self.p95_ms:.0f} ms, max {self.max_ms:.0f} ms",
            f"burst: {self.burst} inserts committed at once, drained in "
            f"{self.burst_drain_s:.1f} s ({self.burst / self.burst_drain_s:.0f} changes/s)",
        ]


def _insert(settings: Settings, codes: list[str], rate_per_s: float) -> list[int]:
    ids = []
    gap = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as conn:
        next_at = time.monotonic()
        for code in codes:
            row = conn.execute(
                "INSERT INTO accounting.customer (code, name) VALUES (%s, %s) RETURNING id",
                (code, f"Benchmark {code}"),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
            next_at += gap
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return ids


def _latency_ms(record: dict[str, Any]) -> float:
    applied = datetime.fromisoformat(record["applied_at"]).timestamp() * 1000
    return applied - float(record["source"]["ts_ms"])


def run(
    settings: Settings, changes: int = 300, rate_per_s: float = 20.0, burst: int = 300
) -> BenchFigures:
    tag = run_tag()
    start = _results_end(settings)
    ids = _insert(settings, [f"BENCH-{tag}-{i:05}" for i in range(changes)], rate_per_s)
    results = wait_for_results(settings, start, set(ids), changes, timeout_s=120 + changes)
    latencies = sorted(_latency_ms(r) for r in results if r["action"] == "created")
    if len(latencies) < changes:
        raise RuntimeError(f"only {len(latencies)} of {changes} changes were created in the CRM")

    start = _results_end(settings)
    began = time.monotonic()
    burst_ids = _insert(settings, [f"BENCH-{tag}-B{i:05}" for i in range(burst)], 0)
    wait_for_results(settings, start, set(burst_ids), burst, timeout_s=120 + burst)
    drained = time.monotonic() - began
    return BenchFigures(
        changes=changes,
        rate_per_s=rate_per_s,
        median_ms=statistics.median(latencies),
        p95_ms=latencies[int(0.95 * (len(latencies) - 1))],
        max_ms=latencies[-1],
        burst=burst,
        burst_drain_s=drained,
    )
