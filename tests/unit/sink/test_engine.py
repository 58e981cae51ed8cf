"""The sink against an in-memory CRM: order, CRM as authority, idempotence, retries."""

from __future__ import annotations

import random
from typing import Any

import pytest

from acct2crm.errors import CrmRejected, CrmRetryable
from acct2crm.rules.change import Action, Change
from acct2crm.rules.decide import CrmRecord, Fields, SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine, plan_lanes
from acct2crm.sink.pacing import RetryPolicy
from tests.support.changes import change, row
from tests.support.memory_crm import MemoryCrm


def engine_for(
    crm: MemoryCrm,
    *,
    seeded: bool = True,
    table: dict[str, Any] | None = None,
    positions: dict[str, Any] | None = None,
) -> SinkEngine:
    cache = CodeCache(table if table is not None else {}, "default")
    if seeded:
        for record in crm.records.values():
            cache.remember(record)
        cache.mark_seeded()
    return SinkEngine(
        crm,
        cache,
        positions if positions is not None else {},
        retry=RetryPolicy(base_s=0.001, cap_s=0.005),
    )


def intent(c: Change) -> SyncIntent:
    result = classify(c, DEFAULT_SCOPE)
    assert isinstance(result, SyncIntent)
    return result


async def test_code_swap_across_two_rows_in_three_transactions() -> None:
    crm = MemoryCrm()
    engine = engine_for(crm)
    batch = [
        intent(change("c", after=row(1, "A"), lsn=10)),
        intent(change("c", after=row(2, "B"), lsn=20)),
        intent(change("u", before=row(1, "A"), after=row(1, "T"), lsn=30)),
        intent(change("u", before=row(2, "B"), after=row(2, "A"), lsn=40)),
        intent(change("u", before=row(1, "T"), after=row(1, "B"), lsn=50)),
    ]
    results = await engine.apply_batch(batch)
    assert [r.action for r in results] == [Action.CREATED] * 2 + [Action.UPDATED] * 3
    by_code = crm.by_code()
    assert set(by_code) == {"a", "b"}
    assert by_code["b"].external_ref == "default:1"
    assert by_code["a"].external_ref == "default:2"
    assert len(crm.records) == 2
    first_ids = {r.intent.accounting_id: r.crm_id for r in results[:2]}
    assert by_code["b"].id == first_ids[1]  # the CRM record followed its accounting customer
    assert by_code["a"].id == first_ids[2]


async def test_create_that_meets_409_is_decided_again_from_the_crm() -> None:
    crm = MemoryCrm()
    engine = engine_for(crm)  # seeded while the CRM was empty: the table believes KH001 free
    crm.add("kh001 ", name="Made by sales")
    [result] = await engine.apply_batch([intent(change("c", after=row(1, "KH001")))])
    assert result.action is Action.SKIPPED_DUPLICATE_CODE
    assert crm.writes == 0
    assert crm.by_code()["kh001"].fields["name"] == "Made by sales"


async def test_update_meeting_409_updates_the_record_that_has_the_code() -> None:
    crm = MemoryCrm()
    engine = engine_for(crm)
    sales = crm.add("KH002", name="Sales")
    upd = change("u", before=row(1, "KH001"), after=row(1, "KH002", name="From accounting"))
    [result] = await engine.apply_batch([intent(upd)])
    assert result.action is Action.UPDATED
    assert crm.records[sales.id].fields["name"] == "From accounting"
    assert len(crm.records) == 1


async def test_stale_cache_never_overwrites_a_record_sales_renamed() -> None:
    crm = MemoryCrm()
    engine = engine_for(crm)
    await engine.apply_batch([intent(change("c", after=row(1, "KH001"), lsn=10))])
    [ours] = crm.records.values()
    # sales renames our record in the CRM; the table still believes KH001 → ours
    await crm.patch(ours.id, {"code": "VIP-1"})
    upd = change("u", before=row(1, "KH001"), after=row(1, "KH001", name="Edited"), lsn=20)
    [result] = await engine.apply_batch([intent(upd)])
    assert result.action is Action.CREATED  # R2c: the CRM no longer has KH001
    assert crm.records[ours.id].fields["name"] == "Customer KH001"
    assert crm.records[ours.id].fields["code"] == "VIP-1"


async def test_replaying_everything_costs_zero_crm_writes() -> None:
    crm = MemoryCrm()
    positions: dict[str, Any] = {}
    table: dict[str, object] = {}
    changes = [
        change("c", after=row(1, "A"), lsn=10),
        change("u", before=row(1, "A"), after=row(1, "A", phone="0900"), lsn=20),
        change("u", before=row(1, "A"), after=row(1, "C"), lsn=30),
    ]
    engine = engine_for(crm, table=table, positions=positions)
    await engine.apply_batch([intent(c) for c in changes])
    writes = crm.writes
    again = engine_for(crm, table=table, positions=positions)
    results = await again.apply_batch([intent(c) for c in changes])
    assert crm.writes == writes
    assert {r.action for r in results} == {Action.UNCHANGED}


async def test_redelivered_insert_after_lost_table_is_recognised_as_ours() -> None:
    crm = MemoryCrm()
    insert = intent(change("c", after=row(42, "KH042")))
    await engine_for(crm).apply_batch([insert])
    # crash: the table and positions were lost, the CRM kept the record
    [result] = await engine_for(crm, seeded=False).apply_batch([insert])
    assert result.action is Action.CREATED
    assert len(crm.records) == 1


class FlakyCrm(MemoryCrm):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def create(self, fields: Fields) -> CrmRecord:
        if self.failures:
            self.failures -= 1
            raise CrmRetryable("CRM answered 503", status=503, retry_after=0.001)
        return await super().create(fields)


async def test_retryable_errors_wait_and_nothing_is_lost() -> None:
    crm = FlakyCrm(failures=4)
    engine = engine_for(crm)
    [result] = await engine.apply_batch([intent(change("c", after=row(1, "KH001")))])
    assert result.action is Action.CREATED
    assert crm.failures == 0
    assert engine.wait_state.retries == 4
    assert engine.wait_state.reason is None


class RejectingCrm(MemoryCrm):
    async def create(self, fields: Fields) -> CrmRecord:
        if fields.get("tax_code") == "bad":
            raise CrmRejected("CRM rejected tax_code: not 10 digits", field="tax_code")
        return await super().create(fields)


async def test_rejected_row_fails_and_the_next_goes_on() -> None:
    crm = RejectingCrm()
    engine = engine_for(crm)
    results = await engine.apply_batch(
        [
            intent(change("c", after=row(1, "KH001", tax_code="bad"))),
            intent(change("c", after=row(2, "KH002"))),
        ]
    )
    assert [r.action for r in results] == [Action.FAILED, Action.CREATED]
    assert "tax_code" in results[0].reason


def test_lanes_serialise_shared_codes_and_rows_only() -> None:
    batch = [
        intent(change("c", after=row(1, "A"))),
        intent(change("c", after=row(2, "B"))),
        intent(change("u", before=row(3, "C"), after=row(3, "A"))),
        intent(change("c", after=row(4, "D"))),
        intent(change("u", before=row(4, "D"), after=row(4, "D", name="x"))),
    ]
    lanes = sorted(plan_lanes(batch))
    assert lanes == [[0, 2], [1], [3, 4]]


@pytest.mark.parametrize("seed", range(8))
async def test_concurrent_lanes_reach_the_outcome_the_rules_give(seed: int) -> None:
    """Six rows, random renames and edits in one batch, lanes interleaved at random.

    Accounting keeps codes unique and no one else writes to this CRM, so the
    rules give one answer whatever the interleaving: each row keeps exactly
    one record, created once and then patched, holding the row's last code and
    phone. That expectation is written out here, not taken from another run.
    """
    rng = random.Random(seed)
    changes = []
    lsn = 0
    code = {i: f"K{i}" for i in range(1, 7)}
    phone: dict[int, str | None] = dict.fromkeys(code)
    for i in range(1, 7):
        lsn += 10
        changes.append(change("c", after=row(i, code[i]), lsn=lsn))
    renames = 0
    for _ in range(30):
        i = rng.randint(1, 6)
        new = f"K{rng.randint(1, 9)}"
        if new in code.values() and code[i] != new:
            continue  # accounting keeps codes unique
        lsn += 10
        changes.append(
            change("u", before=row(i, code[i]), after=row(i, new, phone=str(lsn)), lsn=lsn)
        )
        renames += new != code[i]
        code[i], phone[i] = new, str(lsn)
    assert renames >= 3, "the history should move codes between rows"

    crm = MemoryCrm(jitter=random.Random(seed))
    results = await engine_for(crm).apply_batch([intent(c) for c in changes])

    expected = sorted((code[i], phone[i], f"default:{i}") for i in code)
    got = sorted((r.code, r.fields["phone"], r.external_ref) for r in crm.records.values())
    assert got == expected
    assert [r.action for r in results] == [Action.CREATED] * 6 + [Action.UPDATED] * (
        len(changes) - 6
    )
    created = {r.intent.accounting_id: r.crm_id for r in results[:6]}
    assert {r.external_ref: r.id for r in crm.records.values()} == {
        f"default:{i}": created[i] for i in code
    }  # every record followed its own row through the renames
    assert crm.writes == len(changes)  # one write per change: no retry wrote twice
    assert [kind for kind, _ in crm.calls].count("create") == 6
