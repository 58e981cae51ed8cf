"""A CRM outage: one call probes, the others wait for it and then go in the order sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import pytest

from acct2crm.errors import CrmRejected, CrmRetryable
from acct2crm.rules.change import Action
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import OutageGate, RetryPolicy, WaitState, call_with_retry
from acct2crm.sink.ports import ItemResult, Write
from tests.support.changes import change, row
from tests.support.memory_crm import MemoryCrm

ROWS = 20
OUTAGE_S = 0.15
POLICY = RetryPolicy(base_s=0.01, cap_s=0.02)


class DownCrm(MemoryCrm):
    """Answers 503 to every call until ``up_at`` (a monotonic time), noting whose codes
    each refused call carried."""

    def __init__(self) -> None:
        super().__init__(batch_limit=50)
        self.up_at = float("inf")
        self.refused: list[tuple[str | None, ...]] = []

    async def write_batch(self, writes: Sequence[Write]) -> list[ItemResult]:
        if time.monotonic() < self.up_at:
            self.refused.append(tuple(w.fields.get("code") for w in writes))
            raise CrmRetryable("CRM answered 503", status=503)
        return await super().write_batch(writes)


def engine_for(crm: MemoryCrm, *, gated: bool) -> SinkEngine:
    cache = CodeCache({}, "default")
    cache.mark_seeded()  # inserts of unknown codes go straight to a create
    engine = SinkEngine(crm, cache, {}, retry=POLICY)
    if not gated:  # the former behaviour, for the contrast
        engine.outage = None  # type: ignore[assignment]
    return engine


def inserts() -> list[SyncIntent]:
    out = []
    for n in range(1, ROWS + 1):
        found = classify(change("c", after=row(n, f"K{n:03}"), lsn=10 * n), DEFAULT_SCOPE)
        assert isinstance(found, SyncIntent)
        out.append(found)
    return out


async def drain_through_outage(gated: bool) -> tuple[DownCrm, list[int]]:
    crm = DownCrm()
    engine = engine_for(crm, gated=gated)
    crm.up_at = time.monotonic() + OUTAGE_S
    results = await engine.apply_batch(inserts())
    assert [r.action for r in results] == [Action.CREATED] * ROWS
    # the CRM numbers its records as it creates them: their rows in creation order
    by_id = sorted(crm.records.values(), key=lambda r: r.id)
    return crm, [int(str(r.external_ref).split(":")[1]) for r in by_id]


async def test_a_backlog_waits_behind_one_probe_and_reaches_the_crm_in_commit_order() -> None:
    crm, order = await drain_through_outage(gated=True)
    assert order == list(range(1, ROWS + 1))
    # the backlog's one batch is refused; from then on one lane probes, every round the
    # same write, however many rounds the machine's speed fits into the outage
    first, *probes = crm.refused
    assert len(first) == ROWS and probes, crm.refused
    assert len(set(probes)) == 1 and len(probes[0]) == 1, probes


async def test_without_the_gate_every_lane_called_the_down_crm_on_its_own() -> None:
    """The contrast that shows the first test measures the gate, not the CRM."""
    crm, _order = await drain_through_outage(gated=False)
    _first, *retries = crm.refused
    assert len(set(retries)) > 1, retries


def failing(log: list[str], name: str, failures: int) -> Callable[[], Awaitable[str]]:
    left = {"n": failures}

    async def call() -> str:
        log.append(name)
        if left["n"]:
            left["n"] -= 1
            raise CrmRetryable("CRM answered 503", status=503)
        return name

    return call


async def test_waiters_go_on_in_the_order_they_failed_once_the_probe_succeeds() -> None:
    gate, state, log = OutageGate(), WaitState(), list[str]()
    release = asyncio.Event()

    async def held_sleep(_delay: float) -> None:
        await release.wait()  # the probe's backoff lasts until the test says

    async def run(name: str) -> str:
        return await call_with_retry(
            failing(log, name, 1), POLICY, state, sleep=held_sleep, gate=gate)

    tasks = []
    for name in ("p", "a", "b", "c"):
        tasks.append(asyncio.create_task(run(name)))
        await asyncio.sleep(0)
    while gate.waiting < 3:
        await asyncio.sleep(0)
    assert log == ["p", "a", "b", "c"] and state.reason is not None
    release.set()
    assert await asyncio.gather(*tasks) == ["p", "a", "b", "c"]
    assert log[4:] == ["p", "a", "b", "c"]  # the probe first, then the waiters in order
    assert state.reason is None


@pytest.mark.parametrize("ending", ["cancelled", "refused"])
async def test_waiters_are_not_left_behind_when_the_probe_ends_without_success(
    ending: str,
) -> None:
    gate, state, log = OutageGate(), WaitState(), list[str]()
    stop = asyncio.Event()

    async def probe_call() -> str:
        log.append("p")
        if stop.is_set():
            raise CrmRejected("refused for good", field="code")
        raise CrmRetryable("CRM answered 503", status=503)

    async def probe_sleep(_delay: float) -> None:
        await stop.wait()

    prober = asyncio.create_task(
        call_with_retry(probe_call, POLICY, state, sleep=probe_sleep, gate=gate))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(
        call_with_retry(failing(log, "w", 1), POLICY, state, gate=gate))
    while gate.waiting < 1:
        await asyncio.sleep(0)
    if ending == "cancelled":
        prober.cancel()
    else:
        stop.set()
    assert await asyncio.wait_for(waiter, timeout=2.0) == "w"  # not the 60 s safety net
    with pytest.raises((asyncio.CancelledError, CrmRejected)):
        await prober
