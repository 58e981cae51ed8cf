"""Bench phase (e): 2 workers against 1 over 4 tenants, side by side in one run.

The CRM is not the bottleneck here (the reference CRM takes batches far
faster than one worker sends them; bench_ratios.py (a)), the worker is: one
worker handles one change at a time per agent. With tenants spread over the
change topic's partitions, a second worker in the group takes half of them,
so the same burst should drain close to twice as fast. The phase adds four
tenants whose databases land in four different partitions, then measures
one burst with one worker and the same burst with two (``up --workers 2``),
three rounds interleaved (the median of each), each after the group settled,
and leaves one worker running as it found it.
"""

from __future__ import annotations

import secrets
import statistics
import time
from typing import Any

import psycopg
from confluent_kafka import ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from acct2crm.kafka_io import consumer
from acct2crm.kafka_security import client_config
from acct2crm.records.avro import result_type
from acct2crm.records.convert import result_as_json
from acct2crm.settings import Settings
from acct2crm.topic_partitions import WORKER_GROUP, tenant_partition
from devstack import tenants, workers
from devstack.demo import _results_end

TENANTS = 4
PER_TENANT = 500
SETTLE_S = 5.0  # after the group settled: the new owners' tables restored
ROUNDS = 3


def bench_tenants(settings: Settings, count: int = TENANTS, prefix: str = "bench_w") -> list[str]:
    """``count`` tenant ids (``prefix`` + a number) whose databases hash to different
    partitions (as many as there are); the tests pick their tenants the same way."""
    chosen: list[str] = []
    taken: set[int] = set()
    wanted = min(count, settings.change_partitions)
    for i in range(10_000):
        tenant_id = f"{prefix}{i}"
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


def _group_settled(settings: Settings, members: int, timeout_s: float = 120.0) -> None:
    """Wait until the worker group has ``members`` members and is stable (not rebalancing)."""
    admin = AdminClient(client_config(settings))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            [future] = admin.describe_consumer_groups([WORKER_GROUP]).values()
            group = future.result(timeout=10)
            if len(group.members) == members and group.state == ConsumerGroupState.STABLE:
                return
        except KafkaException:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"(e): the worker group did not settle with {members} member(s)")


def _run_with(settings: Settings, tenant_ids: list[str], count: int) -> float:
    """One burst with ``count`` workers, after the group settled and a small burst drained
    (every partition owned, every tenant's sink made)."""
    if count > 1:
        workers.ensure(settings, count, echo=lambda _line: None)
    else:
        workers.stop_extra(settings, echo=lambda _line: None)
    _group_settled(settings, count)
    time.sleep(SETTLE_S)  # tables restored on the new owners
    burst_rate(settings, tenant_ids, 5)
    return burst_rate(settings, tenant_ids, PER_TENANT)


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
    ones: list[float] = []
    twos: list[float] = []
    try:  # interleaved, so a change of the machine's load meets both alike
        for _ in range(ROUNDS):
            ones.append(_run_with(settings, tenant_ids, 1))
            twos.append(_run_with(settings, tenant_ids, 2))
    finally:
        workers.stop_extra(settings, echo=lambda _line: None)
    one, two = statistics.median(ones), statistics.median(twos)
    shown = ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(ones, twos, strict=True))
    return [
        f"{name} (partitions {spread}, {PER_TENANT} inserts each, CRM not the bottleneck; "
        f"rounds 1/2 workers: {shown}): {two:,.0f} vs {one:,.0f} changes/s = "
        f"{two / one:.2f}x (target >= 1.6x)"
    ]
