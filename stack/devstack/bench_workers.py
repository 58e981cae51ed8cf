"""Bench phase (e): 2 workers against 1 over 4 tenants, side by side in one run.

The CRM is not the bottleneck here (the reference CRM takes batches far
faster than one worker sends them; bench_ratios.py (a)), the worker is: one
worker handles one change at a time per agent. With tenants spread over the
change topic's partitions, a second worker in the group takes half of them,
so the same burst should drain close to twice as fast. The phase adds four
tenants whose databases land in four different partitions, then measures
one burst with one worker and the same burst with two (``up --workers 2``),
and leaves one worker running as it found it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import psycopg
from confluent_kafka import TopicPartition

from acct2crm.kafka_io import consumer
from acct2crm.records.avro import result_type
from acct2crm.records.convert import result_as_json
from acct2crm.settings import Settings
from acct2crm.topic_partitions import tenant_partition
from devstack import tenants, workers
from devstack.demo import _results_end

TENANTS = 4
PER_TENANT = 500
SETTLE_S = 20.0  # a rebalance after a worker joins or leaves, and its tables restored


def bench_tenants(settings: Settings, count: int = TENANTS) -> list[str]:
    """``count`` tenant ids whose databases hash to different partitions (as many as there are)."""
    chosen: list[str] = []
    taken: set[int] = set()
    wanted = min(count, settings.change_partitions)
    for i in range(10_000):
        tenant_id = f"bench_w{i}"
        partition = tenant_partition(settings, f"accounting_{tenant_id}")
        if partition not in taken or len(taken) >= wanted:
            chosen.append(tenant_id)
            taken.add(partition)
        if len(chosen) == count:
            break
    return chosen


def _insert(settings: Settings, tenant_ids: list[str], tag: str, n: int) -> None:
    """``n`` inserts in each tenant's database, one transaction each."""
    for tenant_id in tenant_ids:
        own = settings.model_copy(update={"pg_database": f"accounting_{tenant_id}"})
        with psycopg.connect(own.postgres_conninfo()) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO accounting.customer (code, name) VALUES (%s, %s)",
                [(f"BW-{tag}-{i:05}", f"Bench worker {i}") for i in range(n)],
            )


def _wait_results(
    settings: Settings, start: int, tenant_ids: set[str], tag: str, *, expected: int,
    timeout_s: float,
) -> int:
    """Results of this burst's rows (by tenant and code) after ``start``; how many arrived."""
    c = consumer(settings, "acct2crm-bench-workers")
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + timeout_s
    prefix = f"BW-{tag}-"
    try:
        c.assign([TopicPartition(settings.results_topic, 0, start)])
        while len(seen) < expected and time.monotonic() < deadline:
            message = c.poll(1.0)
            if message is None or message.error():
                continue
            record: dict[str, Any] = result_as_json(result_type().decode(message.value() or b""))
            code = str(record.get("code") or "")
            if record.get("tenant") in tenant_ids and code.startswith(prefix):
                seen.add((str(record["tenant"]), code))
    finally:
        c.close()
    return len(seen)


def burst_rate(settings: Settings, tenant_ids: list[str], n: int) -> float:
    """Changes per second from the first commit to the last result, ``n`` per tenant."""
    tag = secrets.token_hex(3).upper()
    start = _results_end(settings)
    began = time.monotonic()
    _insert(settings, tenant_ids, tag, n)
    expected = n * len(tenant_ids)
    got = _wait_results(settings, start, set(tenant_ids), tag, expected=expected,
                       timeout_s=120 + expected / 10)
    if got < expected:
        raise RuntimeError(f"(e): only {got} of {expected} results arrived")
    return expected / (time.monotonic() - began)


def _settle(settings: Settings, tenant_ids: list[str]) -> None:
    """Let the group settle, then drain a small burst so every partition is owned."""
    time.sleep(SETTLE_S)
    burst_rate(settings, tenant_ids, 5)


def phase(settings: Settings) -> list[str]:
    """(e): the lines bench --ratios prints."""
    name = "(e) 2 workers vs 1 over 4 tenants"
    if settings.change_partitions < 2:
        return [f"{name}: not measured (change_partitions = {settings.change_partitions}: "
                "one partition has one owner; set change_partitions = 4, then down and up)"]
    tenant_ids = bench_tenants(settings)
    for tenant_id in tenant_ids:
        tenants.add(settings, tenant_id, echo=lambda _line: None)
    spread = sorted({tenant_partition(settings, f"accounting_{t}") for t in tenant_ids})
    try:
        workers.stop_extra(settings, echo=lambda _line: None)
        _settle(settings, tenant_ids)
        one = burst_rate(settings, tenant_ids, PER_TENANT)
        workers.ensure(settings, 2, echo=lambda _line: None)
        _settle(settings, tenant_ids)
        two = burst_rate(settings, tenant_ids, PER_TENANT)
    finally:
        workers.stop_extra(settings, echo=lambda _line: None)
    return [
        f"{name} (partitions {spread}, {PER_TENANT} inserts each, CRM not the bottleneck): "
        f"{two:,.0f} vs {one:,.0f} changes/s = {two / one:.2f}x (target >= 1.6x)"
    ]
