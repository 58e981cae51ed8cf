"""The sink over a CRM with batches: per-item answers, lost replies, contended codes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from acct2crm.rules.change import Action, Change
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import RateLimiter, RetryPolicy
from tests.support.changes import change, row
from tests.support.memory_crm import MemoryCrm


def engine_for(crm: MemoryCrm, *, batch_size: int | None = None) -> SinkEngine:
    cache = CodeCache({}, "default")
    for record in crm.records.values():
        cache.remember(record)
    cache.mark_seeded()
    return SinkEngine(
        crm, cache, {}, retry=RetryPolicy(base_s=0.001, cap_s=0.005), batch_size=batch_size
    )


def intent(c: Change) -> SyncIntent:
    result = classify(c, DEFAULT_SCOPE)
    assert isinstance(result, SyncIntent)
    return result


def inserts(codes: list[str], first_id: int = 1) -> list[SyncIntent]:
    return [
        intent(change("c", after=row(first_id + i, code), lsn=10 * (first_id + i)))
        for i, code in enumerate(codes)
    ]


def creates(crm: MemoryCrm) -> list[str]:
    return [
        str(arg["code"]) for name, arg in crm.calls if name == "create" and isinstance(arg, dict)
    ]


async def test_independent_inserts_travel_in_one_batch_call() -> None:
    crm = MemoryCrm(batch_limit=100)
    results = await engine_for(crm).apply_batch(inserts([f"K{i:02}" for i in range(40)]))
    assert [r.action for r in results] == [Action.CREATED] * 40
    assert crm.batches == [40]
    assert len(crm.records) == 40


async def test_batches_stay_within_the_limit_the_setting_gives() -> None:
    crm = MemoryCrm(batch_limit=100)
    await engine_for(crm, batch_size=7).apply_batch(inserts([f"K{i:02}" for i in range(40)]))
    assert max(crm.batches) <= 7
    assert sum(crm.batches) == 40
    assert len(crm.records) == 40


async def test_a_409_and_a_422_inside_a_batch_are_those_items_own_results() -> None:
    crm = MemoryCrm(batch_limit=100)
    engine = engine_for(crm)  # seeded while the CRM was empty: the table believes C free
    crm.add("C", name="Made by sales")
    crm.reject_codes.add("d")
    results = await engine.apply_batch(inserts(["A", "B", "C", "D", "E"]))
    assert [r.action for r in results] == [
        Action.CREATED,
        Action.CREATED,
        Action.SKIPPED_DUPLICATE_CODE,
        Action.FAILED,
        Action.CREATED,
    ]
    assert results[3].error == "CrmRejected"
    assert crm.batches[0] == 5  # all five went in one call
    assert creates(crm)[:5] == ["A", "B", "C", "D", "E"]  # in the batch's order
    by_code = crm.by_code()
    assert by_code["c"].fields["name"] == "Made by sales"
    assert {k: r.external_ref for k, r in by_code.items()} == {
        "a": "default:1",
        "b": "default:2",
        "c": None,
        "e": "default:5",
    }
    assert results[2].crm_id == by_code["c"].id  # the record sales made
    assert [r.crm_id for r in results[:2]] == [by_code["a"].id, by_code["b"].id]
    assert results[4].crm_id == by_code["e"].id and results[3].crm_id is None


async def test_a_lost_batch_reply_writes_no_duplicate() -> None:
    crm = MemoryCrm(batch_limit=100, lose_replies=1)
    results = await engine_for(crm).apply_batch(inserts(["A", "B", "C"]))
    assert [r.action for r in results] == [Action.CREATED] * 3
    assert len(crm.records) == 3  # the sent-again creates met 409 and found their records
    assert crm.batches[0] == 3 and len(crm.batches) >= 2
    assert {r.crm_id for r in results} == set(crm.records)


def swap() -> list[SyncIntent]:
    return [
        intent(change("c", after=row(1, "A"), lsn=10)),
        intent(change("c", after=row(2, "B"), lsn=20)),
        intent(change("u", before=row(1, "A"), after=row(1, "T"), lsn=30)),
        intent(change("u", before=row(2, "B"), after=row(2, "A"), lsn=40)),
        intent(change("u", before=row(1, "T"), after=row(1, "B"), lsn=50)),
    ]


def rotation(n: int = 40) -> list[SyncIntent]:
    """Rows 0..n-1 hold C0..C(n-1); each takes the code of the row before it."""
    history = [intent(change("c", after=row(100 + i, f"C{i}"), lsn=1000 + i)) for i in range(n)]
    lsn = 5000
    history.append(intent(change("u", before=row(100, "C0"), after=row(100, "TMP"), lsn=lsn)))
    for i in range(1, n):
        lsn += 1
        history.append(
            intent(change("u", before=row(100 + i, f"C{i}"), after=row(100 + i, f"C{i-1}"),
                          lsn=lsn))
        )
    history.append(
        intent(change("u", before=row(100, "TMP"), after=row(100, f"C{n-1}"), lsn=lsn + 1))
    )
    return history


async def run_in_chunks(engine: SinkEngine, history: list[SyncIntent], size: int) -> list[Any]:
    results = []
    for start in range(0, len(history), size):
        results.extend(await engine.apply_batch(history[start : start + size]))
    return results


@pytest.mark.parametrize("batch_limit", [100, 0], ids=["batches", "single-calls"])
@pytest.mark.parametrize("chunk", [2, 3, 5])
async def test_swap_across_batch_boundaries_stays_exact(batch_limit: int, chunk: int) -> None:
    crm = MemoryCrm(batch_limit=batch_limit, jitter=random.Random(chunk))
    results = await run_in_chunks(engine_for(crm), swap(), chunk)
    assert [r.action for r in results] == [Action.CREATED] * 2 + [Action.UPDATED] * 3
    by_code = crm.by_code()
    assert len(crm.records) == 2
    assert by_code["b"].external_ref == "default:1"
    assert by_code["a"].external_ref == "default:2"
    assert by_code["b"].id == results[0].crm_id
    assert by_code["a"].id == results[1].crm_id
    assert bool(crm.batches) == (batch_limit > 0)


@pytest.mark.parametrize("batch_limit", [100, 0], ids=["batches", "single-calls"])
@pytest.mark.parametrize("chunk", [7, 41, 100])
async def test_a_40_code_rotation_stays_exact(batch_limit: int, chunk: int) -> None:
    crm = MemoryCrm(batch_limit=batch_limit, jitter=random.Random(chunk))
    results = await run_in_chunks(engine_for(crm), rotation(40), chunk)
    assert [r.action for r in results] == [Action.CREATED] * 40 + [Action.UPDATED] * 41
    by_code = crm.by_code()
    assert len(crm.records) == 40
    ids = {r.intent.accounting_id: r.crm_id for r in results[:40]}
    for i in range(1, 40):
        assert by_code[f"c{i-1}"].external_ref == f"default:{100 + i}"
        assert by_code[f"c{i-1}"].id == ids[100 + i]
    assert by_code["c39"].external_ref == "default:100"
    assert by_code["c39"].id == ids[100]
    if batch_limit and chunk <= 41:  # in one chunk the rotation is a single lane
        assert max(crm.batches) > 1  # independent commands did share calls


async def test_look_ups_the_cache_cannot_answer_go_by_many_codes() -> None:
    crm = MemoryCrm(batch_limit=100)
    cache = CodeCache({}, "default")  # not seeded: every code must be asked
    engine = SinkEngine(crm, cache, {}, retry=RetryPolicy(base_s=0.001, cap_s=0.005))
    results = await engine.apply_batch(inserts([f"K{i:02}" for i in range(30)]))
    assert [r.action for r in results] == [Action.CREATED] * 30
    lookups = [arg for name, arg in crm.calls if name == "find_codes"]
    assert not [name for name, _ in crm.calls if name == "find"]
    assert len(lookups) == 1 and isinstance(lookups[0], list) and len(lookups[0]) == 30


async def test_a_429_holds_every_lane_and_slows_the_pace() -> None:
    pace = RateLimiter(50)
    for _ in range(3):
        await pace.wait()
    pace.learn(0.05)
    assert pace.per_s == pytest.approx(45)
    began = asyncio.get_running_loop().time()
    await pace.wait()
    assert asyncio.get_running_loop().time() - began >= 0.04  # held for Retry-After

    unpaced = RateLimiter(0)
    for _ in range(20):
        await unpaced.wait()
    unpaced.learn(0.0)
    assert 0 < unpaced.per_s <= 18  # learnt below the 20 calls of the last second


RELAX_S = 0.5


async def test_what_a_429_taught_is_forgotten_once_the_crm_stops_refusing() -> None:
    # long beside a wait of 1/45 s, so a busy machine cannot run out of the lesson early
    pace = RateLimiter(50, relax_after_s=RELAX_S)
    pace.learn(0.0)
    assert pace.per_s == pytest.approx(45)
    await pace.wait()
    assert pace.per_s == pytest.approx(45)  # still within the lesson
    await asyncio.sleep(RELAX_S + 0.1)
    await pace.wait()
    assert pace.per_s == pytest.approx(50)  # back to the configured pace

    unpaced = RateLimiter(0, relax_after_s=RELAX_S)
    for _ in range(20):
        await unpaced.wait()
    unpaced.learn(0.0)
    assert unpaced.per_s > 0
    await asyncio.sleep(RELAX_S + 0.1)
    await unpaced.wait()
    assert unpaced.per_s == 0  # no pace again, as configured
