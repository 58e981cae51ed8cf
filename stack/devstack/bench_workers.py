"""Bench phase (e): 2 workers against 1 over 4 tenants, the workers' own throughput.

The issue asks how much a second worker adds when the CRM is not the
bottleneck (the reference CRM takes batches far faster than a worker sends
them; bench_ratios.py (a)). Timing commit -> last result with the workers
running puts Debezium's capture and PostgreSQL's commits in both figures,
and on a loaded 2-core machine those, not the workers, set the pace. So
each side is measured on a burst that already waits on the change topic:
with every worker stopped (the group empty), the four tenants (four
different partitions) commit PER_TENANT inserts each, the bench waits until
the change topic's end offsets hold the whole burst, then starts 1 (or 2)
workers together and times from the first result after the group is stable
with them to the last result (each result's Kafka timestamp). The group's
settling and the first result's delay (tables restored on the new owners)
are printed apart, with each worker's CPU seconds over the drain and the
machine's load average, so a reader sees whether the workers had CPU to
spare. Rounds 1-2-1-2 interleaved, medians compared. On ``rocksdb://``,
worker 2 runs alone once before each round with two (untimed), so its store
is current on whichever partitions it is given (``_second_catches_up``). After each side the
old end-to-end figure (commit -> last result, workers running and settled)
is taken too, as a second line. The phase leaves worker 1 running, as
``up`` left it.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import TopicPartition

from acct2crm.kafka_io import consumer
from acct2crm.records.avro import result_type
from acct2crm.records.convert import result_as_json
from acct2crm.settings import Settings
from acct2crm.topic_partitions import tenant_partition
from devstack import bench_worker_group, tenants, workers
from devstack.demo import _results_end
from devstack.proc_cpu import cpu_seconds

TENANTS = 4
PER_TENANT = 3_000  # waiting on the change topic before the workers start
E2E_PER_TENANT = 500  # the end-to-end line (commit -> last result), as before
SETTLE_S = 5.0  # after the group settled: the new owners' tables restored
ROUNDS = 3
CAPTURE_TIMEOUT_S = 180.0
OTHERS = ("crm", "kafka")  # their CPU over the drain too: is one of them the limit?


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


def _result_stamps(
    settings: Settings, start: int, tenant_ids: set[str], tag: str, *, expected: int,
    timeout_s: float, on_first: Callable[[], object] | None = None,
) -> dict[str, list[int]]:
    """Kafka timestamps (ms) of this burst's results after ``start`` per tenant, one per
    row (by tenant and code), until ``expected`` arrived or the time is up; ``on_first``
    is called as the first one is read."""
    c = consumer(settings, "acct2crm-bench-workers")
    seen: dict[tuple[str, str], int] = {}
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
                if not seen and on_first is not None:
                    on_first()
                seen.setdefault((str(record["tenant"]), code), message.timestamp()[1])
    finally:
        c.close()
    per_tenant: dict[str, list[int]] = {}
    for (tenant, _code), stamp in seen.items():
        per_tenant.setdefault(tenant, []).append(stamp)
    return {tenant: sorted(stamps) for tenant, stamps in per_tenant.items()}


def _wait_results(
    settings: Settings, start: int, tenant_ids: set[str], tag: str, *, expected: int,
    timeout_s: float,
) -> int:
    """Results of this burst's rows (by tenant and code) after ``start``; how many arrived."""
    found = _result_stamps(settings, start, tenant_ids, tag, expected=expected,
                           timeout_s=timeout_s)
    return sum(len(stamps) for stamps in found.values())


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


@dataclass(frozen=True)
class Drain:
    """One side's drain of a burst that waited on the change topic."""

    rate: float  # changes/s, first result after the group settled -> last result
    first_s: float  # group settled -> first result (the new owners restoring their tables)
    window_s: float  # group settled -> last result
    cpu_s: tuple[float, ...]  # each worker's CPU seconds, first result -> last (the drain)
    load: float  # the machine's 1-minute load average at the end
    early: int = 0  # results before the group settled (the first worker to join, alone)
    others_s: tuple[tuple[str, float], ...] = ()  # CPU seconds of the CRM and Kafka, too
    flowing: float = 0.0  # changes/s while every tenant's results flowed (flowing_rate)
    flowing_s: float = 0.0  # how long that lasted


def flowing_rate(per_tenant: dict[str, list[int]], settled_ms: int) -> tuple[float, float]:
    """(changes/s, seconds) while every tenant's partition was being drained: from the
    latest first result (after the group settled) to the earliest last one.

    That is the workers' throughput with all of them at work. Each worker restores
    its tables before its first result, and the two rarely finish that together
    (the restore is a start-up cost, printed apart): timed from the first result
    to the last, the one that starts first drains alone at the start, the other
    alone at the end. (0, 0) when no moment had every tenant flowing."""
    after = {t: [s for s in stamps if s >= settled_ms] for t, stamps in per_tenant.items()}
    if not after or any(len(stamps) < 2 for stamps in after.values()):
        return 0.0, 0.0
    begin = max(stamps[0] for stamps in after.values())
    end = min(stamps[-1] for stamps in after.values())
    if end <= begin:
        return 0.0, 0.0
    inside = sum(1 for stamps in after.values() for s in stamps if begin < s <= end)
    return inside / ((end - begin) / 1000), (end - begin) / 1000


def drain_rate(stamps_ms: list[int], settled_ms: int) -> tuple[float, float, float, int]:
    """(changes/s, first-result delay s, window s, results before) of a burst's result
    timestamps, timed from the first result at or after the group settled to the last.
    Results before it are left out: a worker that joins after the group's first
    assignment (the broker waits ``kafka_group_initial_rebalance_delay_ms`` for more
    members, 3 s by default) finds the first one draining alone until it joins."""
    after = sorted(t for t in stamps_ms if t >= settled_ms)
    if len(after) < 2:
        raise ValueError("(e): fewer than two results after the group settled")
    span_s = (after[-1] - after[0]) / 1000
    rate = (len(after) - 1) / span_s if span_s > 0 else float("inf")
    early = len(stamps_ms) - len(after)
    return rate, (after[0] - settled_ms) / 1000, (after[-1] - settled_ms) / 1000, early


def captured(before: dict[int, int], now: dict[int, int], wanted: dict[int, int]) -> bool:
    """Every partition's end offset moved on by at least what its tenants committed."""
    return all(now.get(p, 0) - before.get(p, 0) >= n for p, n in wanted.items())


def _change_ends(settings: Settings, partitions: list[int]) -> dict[int, int]:
    c = consumer(settings, "acct2crm-bench-workers")
    try:
        return {p: int(c.get_watermark_offsets(TopicPartition(settings.change_topic, p),
                                               timeout=10)[1]) for p in partitions}
    finally:
        c.close()


def _wait_captured(settings: Settings, before: dict[int, int], wanted: dict[int, int]) -> None:
    deadline = time.monotonic() + CAPTURE_TIMEOUT_S
    while not captured(before, _change_ends(settings, sorted(wanted)), wanted):
        if time.monotonic() > deadline:
            raise RuntimeError("(e): Debezium did not put the whole burst on the change topic")
        time.sleep(0.2)


def drain(settings: Settings, tenant_ids: list[str], count: int) -> Drain:
    """The workers alone: the burst commits and is captured with no worker running, then
    ``count`` workers start together and drain it."""
    bench_worker_group.stop_all(settings)
    wanted: dict[int, int] = {}
    for tenant_id in tenant_ids:
        partition = tenant_partition(settings, f"accounting_{tenant_id}")
        wanted[partition] = wanted.get(partition, 0) + PER_TENANT
    before = _change_ends(settings, sorted(wanted))
    tag = secrets.token_hex(3).upper()
    start = _results_end(settings)
    _insert(settings, tenant_ids, tag, PER_TENANT)
    _wait_captured(settings, before, wanted)
    bench_worker_group.start(settings, count)
    settled = bench_worker_group.wait_members(settings, count)
    pids = bench_worker_group.worker_pids(settings, count)
    others = bench_worker_group.service_pids(settings, OTHERS)
    cpu_before: list[float] = []
    others_before: dict[str, float] = {}

    def first_result() -> None:  # the tables are restored: the drain begins
        cpu_before.extend(cpu_seconds(pid) or 0.0 for pid in pids)
        others_before.update({n: cpu_seconds(pid) or 0.0 for n, pid in others.items()})

    expected = PER_TENANT * len(tenant_ids)
    per_tenant = _result_stamps(settings, start, set(tenant_ids), tag, expected=expected,
                                timeout_s=120 + expected / 10, on_first=first_result)
    stamps = sorted(s for found in per_tenant.values() for s in found)
    cpu_after = [cpu_seconds(pid) or 0.0 for pid in pids]
    others_s = tuple((n, (cpu_seconds(pid) or 0.0) - others_before[n]) for n, pid in others.items())
    if len(stamps) < expected:
        raise RuntimeError(f"(e): only {len(stamps)} of {expected} results arrived")
    rate, first_s, window_s, early = drain_rate(stamps, int(settled * 1000))
    flowing, flowing_s = flowing_rate(per_tenant, int(settled * 1000))
    return Drain(rate, first_s, window_s,
                 tuple(b - a for a, b in zip(cpu_before, cpu_after, strict=True)),
                 os.getloadavg()[0], early, others_s, flowing, flowing_s)


def _end_to_end(settings: Settings, tenant_ids: list[str], count: int) -> float:
    """The old figure: commit -> last result with ``count`` workers running and settled."""
    bench_worker_group.wait_members(settings, count)
    time.sleep(SETTLE_S)  # tables restored on the new owners
    return burst_rate(settings, tenant_ids, E2E_PER_TENANT)


def _cpu(side: list[Drain]) -> str:
    """Median CPU seconds of each worker over the median drain, as cores used."""
    window = statistics.median(d.window_s - d.first_s for d in side)
    each = [statistics.median(d.cpu_s[i] for d in side) for i in range(len(side[0].cpu_s))]
    seconds = "+".join(f"{c:.1f}" for c in each)
    cores = "+".join(f"{c / window:.2f}" for c in each) if window > 0 else "?"
    shown = f"{seconds} s over {window:.1f} s ({cores} of a core"
    for i, (other, _) in enumerate(side[0].others_s):
        used = statistics.median(d.others_s[i][1] for d in side)
        shown += f"; {other} {used / window:.2f}" if window > 0 else ""
    return shown + ")"


def summary(name: str, spread: list[int], ones: list[Drain], twos: list[Drain],
            e2e: list[tuple[float, float]], *, store: str = "memory://") -> list[str]:
    """The lines of (e): every tenant flowing (the target), the whole drain, the CPU and
    the load, end to end."""
    flow_one = statistics.median(d.flowing for d in ones)
    flow_two = statistics.median(d.flowing for d in twos)
    flows = ", ".join(f"{a.flowing:,.0f}/{b.flowing:,.0f}" for a, b in zip(ones, twos,
                                                                           strict=True))
    spans = (f"{statistics.median(d.flowing_s for d in ones):.1f} s vs "
             f"{statistics.median(d.flowing_s for d in twos):.1f} s")
    one = statistics.median(d.rate for d in ones)
    two = statistics.median(d.rate for d in twos)
    shown = ", ".join(f"{a.rate:,.0f}/{b.rate:,.0f}" for a, b in zip(ones, twos, strict=True))
    loads = [d.load for d in [*ones, *twos]]
    first = (f"{statistics.median(d.first_s for d in ones):.1f} s vs "
             f"{statistics.median(d.first_s for d in twos):.1f} s")
    early = statistics.median(d.early for d in twos)
    lines = [
        f"{name}, every tenant flowing (partitions {spread}, {PER_TENANT:,} inserts each "
        "waiting on the change topic; from the last tenant's first result after the group "
        "settled to the first tenant's last, medians of "
        f"{spans}; rounds 1/2 workers: {flows}): {flow_two:,.0f} vs {flow_one:,.0f} "
        f"changes/s = {_ratio(flow_two, flow_one)} (target >= 1.6x)",
        f"{name}, the whole drain (first result after the group settled -> last; rounds: "
        f"{shown}): {two:,.0f} vs {one:,.0f} changes/s = {_ratio(two, one)}; with 2, median "
        f"{early:,.0f} results came before the second worker joined and are not counted",
        f"{name}, worker CPU from the first result to the last (medians): "
        f"1 worker {_cpu(ones)}; 2 workers {_cpu(twos)}; first result {first} after the "
        f"group settled (tables restored from their changelogs, {store}); load average "
        f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores",
    ]
    if e2e:
        e_one = statistics.median(a for a, _ in e2e)
        e_two = statistics.median(b for _, b in e2e)
        lines.append(
            f"{name}, end to end (commit -> last result, workers running, "
            f"{E2E_PER_TENANT} inserts each): {e_two:,.0f} vs {e_one:,.0f} changes/s = "
            f"{_ratio(e_two, e_one)}"
        )
    return lines


def _ratio(value: float, bound: float) -> str:
    if value <= 0 or bound <= 0:
        return "not measured (no moment had every tenant flowing)"
    return f"{value / bound:.2f}x"


def phase(settings: Settings, *, end_to_end: bool = True) -> list[str]:
    """(e): the lines bench --ratios prints."""
    name = "(e) 2 workers vs 1 over 4 tenants"
    if settings.change_partitions < 2:
        return [f"{name}: not measured (change_partitions = {settings.change_partitions}: "
                "one partition has one owner; set change_partitions = 4, then down and up)"]
    tenant_ids = bench_tenants(settings)
    for tenant_id in tenant_ids:
        tenants.add(settings, tenant_id, echo=lambda _line: None)
    spread = sorted({tenant_partition(settings, f"accounting_{t}") for t in tenant_ids})
    ones: list[Drain] = []
    twos: list[Drain] = []
    e2e: list[tuple[float, float]] = []
    try:  # every tenant's connector capturing and sink made before the first timing
        bench_worker_group.wait_members(settings, 1)
        burst_rate(settings, tenant_ids, 5)
        warmed = _warm_stores(settings, tenant_ids)
        for _ in range(ROUNDS):  # interleaved, so a change of the machine's load meets both
            ones.append(drain(settings, tenant_ids, 1))
            e_one = _end_to_end(settings, tenant_ids, 1) if end_to_end else 0.0
            if warmed:
                _second_catches_up(settings, tenant_ids)
            twos.append(drain(settings, tenant_ids, 2))
            e_two = _end_to_end(settings, tenant_ids, 2) if end_to_end else 0.0
            if end_to_end:
                e2e.append((e_one, e_two))
    finally:
        workers.stop_extra(settings, echo=lambda _line: None)
        bench_worker_group.start_worker_one(settings)
        # the next phase times one worker: its group settled and its tables restored first
        bench_worker_group.wait_members(settings, 1)
        burst_rate(settings, tenant_ids, 1)
    lines = summary(name, spread, ones, twos, e2e, store=settings.table_store)
    if warmed:
        lines.append(f"{name}: before the rounds, 2 workers then 1 were started once and "
                     "drained a few changes (not timed); before each round with 2, worker 2 "
                     "ran alone once (not timed), so its rocksdb:// store held every "
                     "partition as the last round left it, as long-running workers (or "
                     "standby replicas) keep a deployment's stores")
    return lines


def _second_catches_up(settings: Settings, tenant_ids: list[str]) -> None:
    """Worker 2 alone, once, untimed: its store catches up on every partition.

    The round with 1 worker wrote to all four partitions, and a cold start's
    assignment is not sticky: whichever two partitions worker 2 is given next, it
    would first restore all of that from their changelogs, seconds in which only
    worker 1 drains (the "every tenant flowing" window shrank to 0-2.8 s). Worker 1
    ran last, so its store is current already.
    """
    bench_worker_group.stop_all(settings)
    workers.start_extra(settings, 2)
    bench_worker_group.wait_members(settings, 1)
    burst_rate(settings, tenant_ids, 1)  # its results: the restore is done


def _warm_stores(settings: Settings, tenant_ids: list[str]) -> bool:
    """Bring each worker's ``rocksdb://`` store up to date before timing.

    A worker's store holds its partitions as of its last run; worker 2 may not have
    run for a long time, and the first timed start would then measure its catch-up
    rather than two workers at work. ``memory://`` restores everything on every start,
    so a warm start would change nothing there: False, nothing done.
    """
    if not settings.table_store.startswith("rocksdb"):
        return False
    for count in (2, 1):
        bench_worker_group.stop_all(settings)
        bench_worker_group.start(settings, count)
        bench_worker_group.wait_members(settings, count)
        burst_rate(settings, tenant_ids, 5)
    return True
