"""``acct2crm bench --ratios``: each figure side by side with what bounds it.

On the running local stack, in one run:

(a) e2e burst drain vs the CRM's raw capacity for the same writes (creates, in
    batches of the worker's ``crm_batch_size`` or single, 8 calls at once)
    from a plain client, in an account of its own; and its ceiling here: the
    same burst committed and captured while no worker runs (the e2e drain
    cannot beat its own input);
(b) e2e drain vs Debezium's capture (the burst's last change on the topic);
(c) the sink (in this process, real HTTP) against a CRM account limited to
    50 calls/s with 20 ms latency, without and with batches (needs the stack
    started with ``--crm-fault-injection``; says so otherwise);
(d) the decision stage as ``replay --dry-run`` runs it (decode → classify →
    outcome or command, against the rows' applied positions) vs a plain
    confluent-kafka consume + JSON decode (stdlib ``json``) of the same change
    topic; beside it, the worker's decision with its command Avro-encoded;
    the three take turns, a warm-up round then the median of three; and the worker's
    replay of changes it already applied (bench_replay.py);
(e) 2 workers vs 1 over 4 tenants (bench_workers.py; needs change_partitions >= 2);
    ``EXTRA_PHASES``: more phases add themselves there and print their own lines;
(f) tenant B's latency while tenant A's CRM is down vs A healthy (bench_isolation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import httpx
import psycopg
from confluent_kafka import TopicPartition

from acct2crm.crm.client import CrmClient
from acct2crm.debezium import decode_change
from acct2crm.errors import DecodeError
from acct2crm.kafka_io import consumer
from acct2crm.records.avro import command_type
from acct2crm.records.convert import command_record
from acct2crm.replay import Previewer
from acct2crm.rules.change import Action, Change, Op, Position
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.settings import Settings
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import RateLimiter, RetryPolicy
from acct2crm.topic_partitions import tenant_partition
from devstack.bench_loop import on_loop, restart_worker, worker_loop
from devstack.bench_replay import replay_rate
from devstack.demo import _results_end, run_tag, wait_for_results

LIMIT_PER_S = 50
LATENCY_MS = 20
CONCURRENCY = 8
STAGE_ROUNDS = 3  # (d): counted rounds of the three readers, after a warm-up round

# (e): phases other parts of the workbench register; each returns its lines
EXTRA_PHASES: list[Callable[[Settings], list[str]]] = []


@dataclass
class Ratios:
    lines: list[str] = field(default_factory=list)

    def ratio(self, name: str, value: float, bound: float, unit: str, target: str) -> None:
        share = value / bound if bound else 0.0
        self.lines.append(
            f"{name}: {value:,.0f} vs {bound:,.0f} {unit} = {share:.2f}x (target {target})"
        )


def _admin(settings: Settings) -> httpx.Client:
    token = settings.crm_token.get_secret_value()
    return httpx.Client(
        base_url=settings.crm_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _account(settings: Settings, prefix: str) -> str:
    """A fresh CRM account (so the figures never meet the worker's data); its token."""
    with _admin(settings) as admin:
        reply = admin.post("/admin/accounts", json={"account": f"{prefix}_{secrets.token_hex(4)}"})
        reply.raise_for_status()
        token: str = reply.json()["token"]
        return token


def _faults(settings: Settings, body: dict[str, Any]) -> bool:
    with _admin(settings) as admin:
        return admin.post("/admin/faults", json=body).status_code == 200


async def _raw_creates(settings: Settings, n: int, batch: int) -> float:
    """Creates per second a plain client gets, ``CONCURRENCY`` calls at once."""
    token = _account(settings, "raw")
    tag = secrets.token_hex(3).upper()
    bodies = [{"code": f"RAW{tag}{i}", "name": f"Raw {i}"} for i in range(n)]
    calls: list[Any] = (
        [bodies[i : i + batch] for i in range(0, n, batch)] if batch > 1 else list(bodies)
    )
    async with httpx.AsyncClient(
        base_url=settings.crm_url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
        limits=httpx.Limits(max_connections=CONCURRENCY),
    ) as http:
        queue = list(reversed(calls))

        async def worker() -> None:
            while queue:
                item = queue.pop()
                if isinstance(item, list):
                    ops = [{"op": "create", "fields": f} for f in item]
                    r = await http.post("/api/customers/batch", json={"operations": ops})
                else:
                    r = await http.post("/api/customers", json=item)
                r.raise_for_status()

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return n / (time.monotonic() - began)


def own_partition(settings: Settings) -> int:
    """The change topic's partition the stack's own company (``pg_database``) lands in:
    with ``change_partitions`` > 1 it need not be partition 0."""
    return tenant_partition(settings, settings.pg_database)


def _topic_end(settings: Settings, topic: str) -> int:
    c = consumer(settings, "acct2crm-bench")
    try:
        partition = TopicPartition(topic, own_partition(settings))
        return int(c.get_watermark_offsets(partition, timeout=10)[1])
    finally:
        c.close()


def _captured_at(settings: Settings, start: int, ids: set[int], timeout_s: float) -> float:
    """When the last of ``ids``'s inserts was appended to the change topic (epoch s)."""
    c = consumer(settings, "acct2crm-bench")
    seen: set[int] = set()
    last_ms = 0
    deadline = time.monotonic() + timeout_s
    try:
        c.assign([TopicPartition(settings.change_topic, own_partition(settings), start)])
        while seen != ids and time.monotonic() < deadline:
            message = c.poll(0.5)
            if message is None or message.error():
                continue
            change = decode_change(message.key(), message.value(), tenant="default")
            if change is not None and change.accounting_id in ids:
                seen.add(change.accounting_id)
                last_ms = max(last_ms, int(message.timestamp()[1]))
    finally:
        c.close()
    return last_ms / 1000


@dataclass
class Burst:
    """``n`` inserts committed one transaction each, as accountants' saves arrive."""

    ids: set[int]
    began: float  # time.monotonic()
    began_epoch: float
    changes_start: int
    results_start: int
    committed_s: float

    def captured_s(self, settings: Settings) -> float:
        """Seconds from the first commit to the last insert on the change topic."""
        return _captured_at(settings, self.changes_start, self.ids, 30) - self.began_epoch


def _commit(settings: Settings, n: int) -> Burst:
    tag = run_tag() + secrets.token_hex(2).upper()
    results_start = _results_end(settings)
    changes_start = _topic_end(settings, settings.change_topic)
    began, began_epoch = time.monotonic(), time.time()
    ids = set()
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as conn:
        for i in range(n):
            row = conn.execute(
                "INSERT INTO accounting.customer (code, name) VALUES (%s, %s) RETURNING id",
                (f"BR-{tag}-{i:05}", f"Benchmark {i}"),
            ).fetchone()
            assert row is not None
            ids.add(int(row[0]))
    return Burst(ids, began, began_epoch, changes_start, results_start, time.monotonic() - began)


def _burst(settings: Settings, n: int) -> tuple[float, float, float]:
    """Commit ``n`` inserts at once: (seconds to commit, to capture, to drain)."""
    burst = _commit(settings, n)
    wait_for_results(settings, burst.results_start, burst.ids, n, timeout_s=120 + n / 10)
    drained = time.monotonic() - burst.began
    return burst.committed_s, burst.captured_s(settings), drained


def _input_alone(settings: Settings, n: int) -> tuple[float, float]:
    """(seconds to commit, to capture) a burst while no worker runs: the most (a) can
    reach on this machine, since the e2e drain cannot beat its own input. The worker is
    started again (as ``up`` leaves it) and drains the burst before this returns."""
    from devstack import bench_worker_group as group  # noqa: PLC0415

    group.stop_all(settings)
    try:
        burst = _commit(settings, n)
        captured = burst.captured_s(settings)
    finally:
        group.start_worker_one(settings)
    wait_for_results(settings, burst.results_start, burst.ids, n, timeout_s=300 + n / 10)
    return burst.committed_s, captured


def _intents(n: int, tag: str) -> list[SyncIntent]:
    out = []
    for i in range(n):
        row_id = 10_000_000 + i
        after = {"id": row_id, "code": f"LIM{tag}{i}", "name": f"Limited {i}",
                 "branch_code": "HQ", "is_customer": True, "is_vendor": False}
        change = Change("default", Op.CREATE, row_id, None, after, Position(i + 1))
        decided = classify(change, DEFAULT_SCOPE)
        assert isinstance(decided, SyncIntent)
        out.append(decided)
    return out


async def _sink_against_limit(settings: Settings, n: int, batch: int) -> float:
    """Changes/s the sink applies to an account limited to 50 calls/s (20 ms each)."""
    token = _account(settings, "lim")
    client = CrmClient.connect(settings.crm_url, token)
    cache = CodeCache({}, "default")
    cache.mark_seeded()
    engine = SinkEngine(
        client, cache, {}, retry=RetryPolicy(0.05, 2.0), max_concurrency=CONCURRENCY,
        pace=RateLimiter(LIMIT_PER_S), batch_size=batch,
    )
    intents = _intents(n, secrets.token_hex(3).upper())
    began = time.monotonic()
    try:
        done = 0
        for start in range(0, n, settings.sink_batch_size):
            results = await engine.apply_batch(intents[start : start + settings.sink_batch_size])
            done += sum(r.action is Action.CREATED for r in results)
    finally:
        await client.aclose()
    if done != n:
        raise RuntimeError(f"only {done} of {n} changes applied against the limited CRM")
    return n / (time.monotonic() - began)


@contextlib.contextmanager
def _own_changes(settings: Settings) -> Iterator[tuple[Any, int]]:
    """A consumer at the start of the stack's own change partition, and that partition's end."""
    c = consumer(settings, "acct2crm-bench-" + secrets.token_hex(3))
    try:
        partition = TopicPartition(settings.change_topic, own_partition(settings), 0)
        c.assign([partition])
        yield c, int(c.get_watermark_offsets(partition)[1])
    finally:
        c.close()


@dataclass(frozen=True)
class DecisionStage:
    """(d)'s passes over the same messages of the stack's own change partition, in changes/s."""

    messages: int
    raw: float  # consume + json.loads
    dry_run: float  # consume + what `replay --dry-run` decides per message
    encoded: float  # consume + decode + classify + the command Avro-encoded, as the worker does
    positions: int  # rows whose applied position the dry run read first
    positions_s: float  # the time that read took (once per dry run, not per change)
    outcomes: dict[str, int]  # what the dry run would do, by kind
    round_ratios: list[float]  # dry run / raw of each round, to show the spread


def _decision_stage(settings: Settings, limit: int) -> DecisionStage:
    """Three readers of the same messages through one consume loop; only the handling
    of a message differs. They take turns: a first round warms the broker's files (its
    first pass reads them cold) and is not counted, then each reader's median over
    ``STAGE_ROUNDS`` rounds counts. The better of two let one fast raw pass (172k/s
    against 117-123k/s) set a whole run's ratio (0.40x against 0.55-0.57x)."""

    def consume(handle: Callable[[Any], None]) -> tuple[float, int]:
        with _own_changes(settings) as (c, end):
            stop = min(end, limit)
            n = 0
            began = None
            while n < stop:
                # never more than are left: consume() waits its whole timeout for a batch
                # it cannot fill, and that 1 s at the end of each pass made a 6,002-change
                # topic read at ~5,800/s, every reader alike
                batch = c.consume(min(500, stop - n), 1.0)
                if not batch:
                    break
                # the clock starts with the first batch: the first fetch is a fixed cost
                began = began if began is not None else time.monotonic()
                for message in batch:
                    if not message.error():
                        handle(message)
                        n += 1
            return (n / (time.monotonic() - began) if began is not None else 0.0), n

    # a topic the tests wrote to holds garbage too: every pass meets it alike
    def raw(message: Any) -> None:
        value = message.value()
        if value:
            with contextlib.suppress(ValueError):
                json.loads(value)

    began = time.monotonic()
    previewer = Previewer(settings)
    positions_s = time.monotonic() - began
    outcomes: dict[str, int] = {}

    def tally(message: Any) -> None:  # the warm-up's dry run: what it would do, by kind
        preview = previewer.preview(message.offset(), message.key(), message.value())
        if preview is not None:
            kind = preview.would.split(":", 1)[0]
            outcomes[kind] = outcomes.get(kind, 0) + 1

    def dry_run(message: Any) -> None:  # as timed: the decision, dropped as raw drops its json
        previewer.preview(message.offset(), message.key(), message.value())

    avro = command_type()

    def encoded(message: Any) -> None:
        try:
            change = decode_change(message.key(), message.value(), tenant="default",
                                   offset=message.offset())
        except DecodeError:
            return
        if change is None:
            return
        decided = classify(change, DEFAULT_SCOPE)
        if isinstance(decided, SyncIntent):
            avro.encode(command_record(decided, message.offset()))

    rates: dict[str, list[float]] = {"raw": [], "dry_run": [], "encoded": []}
    n = 0
    for round_ in range(1 + STAGE_ROUNDS):  # round 0 warms the broker's files and the caches
        for name, handle in (("raw", raw), ("dry_run", dry_run if round_ else tally),
                             ("encoded", encoded)):
            rate, n = consume(handle)
            if round_:
                rates[name].append(rate)
    return DecisionStage(n, median(rates["raw"]), median(rates["dry_run"]),
                         median(rates["encoded"]), len(previewer.positions), positions_s,
                         dict(outcomes),
                         [dry / raw for dry, raw in zip(rates["dry_run"], rates["raw"],
                                                        strict=True)])


def _decision_costs(settings: Settings, limit: int) -> dict[str, float]:
    """Microseconds a change for each step of the decision stage, on messages already read:
    what the decision adds to a raw read, step by step (best of three passes each)."""
    messages: list[tuple[Any, Any, Any]] = []
    with _own_changes(settings) as (c, end):
        read, stop = 0, min(end, limit)
        while read < stop:
            batch = c.consume(min(500, stop - read), 2.0)
            if not batch:
                break
            read += len(batch)
            messages += [(m.key(), m.value(), m.offset()) for m in batch
                         if not m.error() and m.value()]

    def timed(step: Callable[[Any], Any], items: list[Any]) -> tuple[float, list[Any]]:
        best, out = float("inf"), []
        gc.disable()  # each step keeps its outputs for the next: no collector passes over them
        try:
            for _ in range(3):
                began = time.perf_counter()
                out = [step(item) for item in items]
                best = min(best, time.perf_counter() - began)
        finally:
            gc.enable()
        return best / max(1, len(items)) * 1e6, out

    def decode(message: tuple[Any, Any, Any]) -> Change | None:
        with contextlib.suppress(DecodeError):
            return decode_change(message[0], message[1], tenant="default", offset=message[2])
        return None

    def plain_json(message: tuple[Any, Any, Any]) -> Any:
        with contextlib.suppress(ValueError):
            return json.loads(message[1])
        return None

    avro = command_type()
    costs: dict[str, float] = {}
    costs["json.loads"], _ = timed(plain_json, messages)
    costs["decode (json included)"], changes = timed(decode, messages)
    costs["classify"], decided = timed(lambda ch: classify(ch, DEFAULT_SCOPE),
                                       [ch for ch in changes if ch is not None])
    intents = [d for d in decided if isinstance(d, SyncIntent)]
    costs["command record"], records = timed(lambda d: command_record(d, 0), intents)
    costs["Avro encode (fastavro)"], _ = timed(avro.encode, records)
    return costs


def _drain_on_asyncio(settings: Settings, burst: int) -> tuple[float, str | None]:
    """The e2e drain of a burst with the worker restarted on asyncio's own loop (changes/s,
    the loop it reported); the next start of the worker is on the configured loop again."""
    standard = on_loop(settings, "asyncio")
    restart_worker(standard)
    _burst(standard, 1)  # a worker just started restores its tables first: not timed
    drained = _burst(standard, burst)[2]
    return burst / drained, worker_loop(standard)


def _replays(settings: Settings, replay: int, raw_rate: float) -> list[str]:
    """(d)'s replay that writes nothing, on asyncio's own loop, then on the configured one."""
    standard = replay_rate(on_loop(settings, "asyncio"), replay)  # it restarts the worker
    standard_loop = worker_loop(settings) or "an unreported"
    replayed = replay_rate(settings, replay)  # the worker restarted on the configured loop
    loop = worker_loop(settings) or "an unreported"
    gain = replayed.rate / standard.rate if standard.rate else 0.0
    return [
        f"(d) replay that writes nothing: {replayed.rate:,.0f} changes/s over {replayed.changes} "
        f"changes ({replayed.commands_sent} commands sent; = {replayed.rate / raw_rate:.2f}x raw "
        f"consume+decode; worker on {loop} loop; target >= 5,000/s)",
        f"    the same replay just before, worker on {standard_loop} loop (event_loop = "
        f"asyncio): {standard.rate:,.0f} changes/s over {standard.changes} changes "
        f"({standard.commands_sent} commands sent); {loop} = {gain:.2f}x that",
    ]


def run(
    settings: Settings, burst: int = 2000, limited: int = 300, batched: int = 5000,
    replay: int = 20_000,
) -> list[str]:
    out = Ratios()
    batch = settings.crm_batch_size
    _burst(settings, 1)  # a worker just started restores its tables first: not timed
    raw = asyncio.run(_raw_creates(settings, burst, batch))
    raw_single = asyncio.run(_raw_creates(settings, burst, 0)) if batch > 1 else raw
    committed, captured, drained = _burst(settings, burst)
    e2e = burst / drained
    loop = worker_loop(settings)
    standard, standard_loop = _drain_on_asyncio(settings, burst)
    out.lines.append(
        f"burst of {burst} inserts: committed in {committed:.1f}s, on the change topic after "
        f"{captured:.1f}s, all results after {drained:.1f}s (crm_batch_size={batch}, "
        f"sink_batch_size={settings.sink_batch_size}, worker on {loop or 'an unreported'} loop)"
    )
    out.ratio("(a) e2e drain vs raw CRM creates", e2e, raw, "changes/s", ">= 0.9x")
    out.ratio(f"    e2e drain on {loop or '?'} vs the same burst just after, worker on "
              f"{standard_loop or 'an unreported'} loop (event_loop = asyncio)",
              e2e, standard, "changes/s", "-")
    if batch > 1:
        out.ratio("(a) e2e drain vs raw CRM single creates", e2e, raw_single, "changes/s", "-")
    out.ratio("(b) e2e drain vs Debezium capture", e2e, burst / captured, "changes/s", "-")
    alone_committed, alone_captured = _input_alone(settings, burst)
    out.ratio("(a) ceiling: the burst's input alone, no worker running (commit + Debezium "
              "capture), vs raw CRM creates", burst / alone_captured, raw, "changes/s", "-")
    out.lines.append(
        f"    (that burst committed at {burst / alone_committed:,.0f}/s = "
        f"{burst / alone_committed / raw:.2f}x raw: the e2e drain cannot beat its input)"
    )
    if _faults(settings, {}):
        try:
            assert _faults(settings, {"rate_limit_per_s": LIMIT_PER_S, "latency_ms": LATENCY_MS})
            single = asyncio.run(_sink_against_limit(settings, limited, 0))
            many = asyncio.run(_sink_against_limit(settings, batched, 100))
        finally:
            _faults(settings, {"rate_limit_per_s": 0, "latency_ms": 0})
        out.ratio("(c) sink, single calls, vs a 50 calls/s CRM", single, LIMIT_PER_S,
                  "changes/s", ">= 0.95x")
        out.ratio("(c) sink, batches of 100, vs a 50 calls/s CRM", many, LIMIT_PER_S,
                  "changes/s", ">= 20x (1,000/s)")
    else:
        out.lines.append(
            "(c) NOT MEASURED: the reference CRM runs without fault injection; start the "
            "stack with `acct2crm up --crm-fault-injection` to limit it to 50 calls/s"
        )
    stage = _decision_stage(settings, 200_000)
    raw_rate = stage.raw
    mix = ", ".join(f"{count:,} {kind}" for kind, count in sorted(stage.outcomes.items()))
    out.ratio(f"(d) decision stage as `replay --dry-run` runs it (decode -> classify -> "
              f"outcome or command) vs raw consume+decode ({stage.messages} changes)",
              stage.dry_run, raw_rate, "changes/s", ">= 0.5x")
    out.lines.append(
        f"    (median of {STAGE_ROUNDS} rounds after a warm-up; each round's ratio: "
        + ", ".join(f"{r:.2f}x" for r in stage.round_ratios) + ")"
    )
    out.lines.append(
        f"    (it would do: {mix or 'nothing'}; before reading, the dry run loaded "
        f"{stage.positions:,} rows' applied positions in {stage.positions_s:.1f}s)"
    )
    out.ratio("(d) the worker's decision with the command Avro-encoded (every change an "
              "insert, no positions) vs raw consume+decode", stage.encoded, raw_rate,
              "changes/s", "-")
    costs = _decision_costs(settings, 20_000)
    out.lines.append(
        "    (d) per change, in memory, no Kafka: "
        + ", ".join(f"{name} {us:.1f} us" for name, us in costs.items())
        + f"; a whole raw read (consume + json) took {1e6 / raw_rate:.1f} us"
    )
    out.lines.extend(_replays(settings, replay, raw_rate))
    # phases (e) tenants and workers, (f) tenant lanes
    from devstack import bench_isolation, bench_workers  # noqa: PLC0415

    # (e) on asyncio first: a phase leaves worker 1 running with the settings it was
    # handed, so the configured phase after it leaves worker 1 as configured for (f)
    plain = on_loop(settings, "asyncio")
    on_asyncio = bench_workers.phase(plain, end_to_end=False)
    plain_loop = worker_loop(plain) or "an unreported"
    out.lines.extend(bench_workers.phase(settings))
    out.lines.extend(
        f"    the same just before, workers on {plain_loop} loop (event_loop = asyncio): "
        + line.removeprefix("(e) 2 workers vs 1 over 4 tenants, ")
        for line in on_asyncio if "every tenant flowing" in line or "worker CPU" in line
    )
    for phase in [bench_isolation.phase, *EXTRA_PHASES]:
        out.lines.extend(phase(settings))
    return out.lines
