"""The sink against an in-memory CRM: order, CRM as authority, idempotence, retries."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from acct2crm.errors import CrmRejected, CrmRetryable
from acct2crm.model.crm import CrmRecord, Fields
from acct2crm.rules.change import Action, Change
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import Applied, SinkEngine, plan_lanes
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


async def test_stale_cache_never_decides_a_write() -> None:
    crm = MemoryCrm()
    engine = engine_for(crm)
    await engine.apply_batch([intent(change("c", after=row(1, "KH001"), lsn=10))])
    [ours] = crm.records.values()
    # sales renames our record in the CRM; the table still believes KH001 → ours
    await crm.patch(ours.id, {"code": "VIP-1"})
    upd = change("u", before=row(1, "KH001"), after=row(1, "KH001", name="Edited"), lsn=20)
    [result] = await engine.apply_batch([intent(upd)])
    # the CRM has no KH001 now, but still names row 1 on VIP-1: R2d, no second record
    assert result.action is Action.UPDATED
    assert result.reason.startswith("R2d:")
    assert len(crm.records) == 1
    assert crm.records[ours.id].fields["code"] == "KH001"
    assert crm.records[ours.id].fields["name"] == "Edited"


@pytest.mark.parametrize("seeded", [True, False])
async def test_r2d_row_renamed_while_out_of_scope_keeps_one_crm_record(seeded: bool) -> None:
    crm = MemoryCrm()
    table: dict[str, object] = {}
    engine = engine_for(crm, seeded=seeded, table=table)
    [created] = await engine.apply_batch([intent(change("c", after=row(1, "A"), lsn=10))])
    # out of scope (never reaches the sink): is_customer off, code A → B
    hidden = change("u", before=row(1, "A"), after=row(1, "B", is_customer=False), lsn=20)
    assert not isinstance(classify(hidden, DEFAULT_SCOPE), SyncIntent)
    back = change(
        "u", before=row(1, "B", is_customer=False), after=row(1, "B", phone="0901"), lsn=30
    )
    [result] = await engine.apply_batch([intent(back)])
    assert result.action is Action.UPDATED
    assert result.reason.startswith("R2d:")
    assert result.crm_id == created.crm_id
    [record] = crm.records.values()
    assert (record.code, record.fields["phone"], record.external_ref) == ("B", "0901", "default:1")
    cache = CodeCache(table, "default")
    assert cache.get("a") is None
    assert cache.get("b") is not None and cache.get("b").id == record.id  # type: ignore[union-attr]
    # a later rename is plain R2b from the table
    later = change("u", before=row(1, "B"), after=row(1, "C"), lsn=40)
    [renamed] = await engine.apply_batch([intent(later)])
    assert renamed.reason.startswith("R2b:")
    assert [r.code for r in crm.records.values()] == ["C"]


class SlowCrm(MemoryCrm):
    """Slow look-ups by external_ref and writes; counts writes in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0

    async def find_by_external_ref(self, ref: str):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.02)
        return await super().find_by_external_ref(ref)

    async def patch(self, crm_id, fields):  # type: ignore[no-untyped-def]
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return await super().patch(crm_id, fields)


async def test_r2d_keeps_commit_order_with_a_lane_that_takes_the_old_code() -> None:
    crm = SlowCrm()
    engine = engine_for(crm)
    await engine.apply_batch([intent(change("c", after=row(1, "A"), lsn=10))])
    # row 1 left the scope and became B; then it came back, and row 2 took code A
    back = change("u", before=row(1, "B", is_customer=False), after=row(1, "B"), lsn=30)
    taken = change("c", after=row(2, "A"), lsn=40)
    results = await engine.apply_batch([intent(back), intent(taken)])
    assert [r.action for r in results] == [Action.UPDATED, Action.CREATED]
    assert sorted((r.code, r.external_ref) for r in crm.records.values()) == [
        ("A", "default:2"), ("B", "default:1")
    ]


async def test_r2d_then_a_rename_of_the_same_row_in_one_batch() -> None:
    crm = SlowCrm()
    engine = engine_for(crm)
    await engine.apply_batch([intent(change("c", after=row(1, "A"), lsn=10))])
    back = change("u", before=row(1, "B", is_customer=False), after=row(1, "B"), lsn=30)
    renamed = change("u", before=row(1, "B"), after=row(1, "C"), lsn=40)
    results = await engine.apply_batch([intent(back), intent(renamed)])
    assert [r.reason[:4] for r in results] == ["R2d:", "R2b:"]
    assert [(r.code, r.external_ref) for r in crm.records.values()] == [("C", "default:1")]


@pytest.mark.parametrize("batch_limit", [0, 5], ids=["single-calls", "batch-api"])
async def test_r2d_after_an_earlier_rename_frees_its_code_keeps_order_with_the_old_code(
    batch_limit: int,
) -> None:
    """Found by the property test: the R2d is only known once B→T ran in the same batch.

    At the batch's start the table holds B (row 2's record), so row 1's update
    looks like R2a; but row 2 renames that record to T first, and row 1's
    update ends in R2d, moving row 1's record off A. Row 3's insert of A,
    committed after, must find A free.
    """
    crm = MemoryCrm(batch_limit=batch_limit)
    engine = engine_for(crm)
    a, b = row(1, "A"), row(2, "B")
    await engine.apply_batch([intent(change("c", after=r, lsn=10 * r["id"])) for r in (a, b)])
    # row 1 leaves the scope as Kh1 (never reaches the sink); the CRM still holds it as A
    kh1 = {**a, "code": "Kh1", "is_customer": False}
    hidden = classify(change("u", before=a, after=kh1, lsn=40), DEFAULT_SCOPE)
    assert not isinstance(hidden, SyncIntent)
    batch = [
        intent(change("u", before=b, after={**b, "code": "T"}, lsn=60)),  # R2b: B → T
        # back in scope as B: the CRM has neither B (now T) nor Kh1, but row 1's record (R2d)
        intent(change("u", before=kh1, after={**a, "code": "B"}, lsn=70)),
        intent(change("c", after=row(3, "A", name="Customer A"), lsn=80)),  # A is free by now
    ]
    results = await engine.apply_batch(batch)
    assert [(r.action, r.reason[:4]) for r in results] == [
        (Action.UPDATED, "R2b:"), (Action.UPDATED, "R2d:"), (Action.CREATED, "R1a:")
    ]
    assert sorted((r.code, r.external_ref) for r in crm.records.values()) == [
        ("A", "default:3"), ("B", "default:1"), ("T", "default:2")
    ]


@pytest.mark.parametrize("synced", [True, False], ids=["R2a", "R2d"])
async def test_updates_of_different_rows_still_run_concurrently(synced: bool) -> None:
    crm = SlowCrm()
    engine = engine_for(crm)
    await engine.apply_batch([intent(change("c", after=row(i, f"K{i}"), lsn=i)) for i in (1, 2)])
    new = "K" if synced else "N"  # N: renamed while out of scope, now back (R2d)
    edits = [
        change("u", before=row(i, f"{new}{i}"), after=row(i, f"{new}{i}", phone="1"), lsn=10 + i)
        for i in (1, 2)
    ]
    results = await engine.apply_batch([intent(c) for c in edits])
    assert {r.reason[:4] for r in results} == {"R2a:" if synced else "R2d:"}
    assert crm.most_in_flight == 2


async def test_r2c_still_creates_when_no_record_names_the_row() -> None:
    crm = MemoryCrm()
    crm.add("OTHER", external_ref="default:10")  # a neighbour's record, not ours
    engine = engine_for(crm)
    upd = change("u", before=row(1, "A", is_customer=False), after=row(1, "A"), lsn=10)
    [result] = await engine.apply_batch([intent(upd)])
    assert result.action is Action.CREATED
    assert result.reason.startswith("R2c:")
    assert ("find_ref", "default:1") in crm.calls
    assert len(crm.records) == 2


class RefLookupRefused(MemoryCrm):
    """Refuses the first ``refusals`` look-ups by external_ref for good (say a 400)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    async def find_by_external_ref(self, ref: str) -> list[CrmRecord]:
        if self.refusals:
            self.refusals -= 1
            raise CrmRejected("CRM refused the query", status=400)
        return await super().find_by_external_ref(ref)


@pytest.mark.parametrize("refusals", [1, 2], ids=["once", "again"])
async def test_a_refused_look_up_ahead_never_makes_a_second_record(refusals: int) -> None:
    crm = RefLookupRefused(refusals=0)
    engine = engine_for(crm)
    await engine.apply_batch([intent(change("c", after=row(1, "A"), lsn=10))])
    # row 1 became B while out of scope; back in scope, only an R2d look-up finds its record
    crm.refusals = refusals
    back = change("u", before=row(1, "B", is_customer=False), after=row(1, "B"), lsn=30)
    [result] = await engine.apply_batch([intent(back)])
    assert len(crm.records) == 1, "the refused look-up ahead was taken for 'no record'"
    if refusals == 1:  # the lane asks again and follows the record
        assert (result.action, result.reason[:4]) == (Action.UPDATED, "R2d:")
        assert [r.code for r in crm.records.values()] == ["B"]
    else:  # refused again: this command fails, nothing is written
        assert result.action is Action.FAILED
        assert [r.code for r in crm.records.values()] == ["A"]


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


class OneLaneLookupFails(MemoryCrm):
    """Looking up one code fails for good; every write is slower than that failure."""

    def __init__(self, bad_code: str, error: Exception) -> None:
        super().__init__()
        self.bad = bad_code.casefold()
        self.error = error
        self.batch_returned = False
        self.late_writes: list[str] = []

    async def find_by_code(self, code):  # type: ignore[no-untyped-def]
        if code.casefold() == self.bad:
            raise self.error
        return await super().find_by_code(code)

    async def _slow_write(self, what: str) -> None:
        await asyncio.sleep(0.02)
        if self.batch_returned:
            self.late_writes.append(what)

    async def create(self, fields):  # type: ignore[no-untyped-def]
        await self._slow_write(f"create {fields.get('code')}")
        return await super().create(fields)

    async def patch(self, crm_id, fields):  # type: ignore[no-untyped-def]
        await self._slow_write(f"patch {crm_id}")
        return await super().patch(crm_id, fields)


LOOKUP_ERRORS = [
    CrmRejected("CRM rejected the record: bad query", status=400),
    RuntimeError("a bug in a lookup"),
]


def lanes_batch() -> list[SyncIntent]:
    return [
        intent(change("c", after=row(1, "A"), lsn=10)),
        intent(change("c", after=row(2, "BAD"), lsn=20)),
        intent(change("c", after=row(3, "C"), lsn=30)),
        intent(change("u", before=row(1, "A"), after=row(1, "A", phone="0901"), lsn=40)),
    ]


@pytest.mark.parametrize("error", LOOKUP_ERRORS, ids=["400", "bug"])
async def test_a_failing_lane_fails_only_its_command_and_the_batch_waits_for_all_lanes(
    error: Exception,
) -> None:
    crm = OneLaneLookupFails("BAD", error)
    engine = engine_for(crm, seeded=False)  # every code is looked up in the CRM
    returned: list[Applied] | Exception
    try:
        returned = await engine.apply_batch(lanes_batch())
    except Exception as exc:  # the old engine let the lane's error out: see what followed
        returned = exc
    crm.batch_returned = True
    await asyncio.sleep(0.1)  # time for any orphaned write to land
    assert crm.late_writes == []
    assert not isinstance(returned, Exception), returned
    results = returned
    assert [r.action for r in results] == [
        Action.CREATED, Action.FAILED, Action.CREATED, Action.UPDATED
    ]
    assert str(error) in results[1].reason
    assert results[1].error == type(error).__name__
    assert sorted(r.code for r in crm.records.values()) == ["A", "C"]
    assert crm.by_code()["a"].fields["phone"] == "0901"


@pytest.mark.parametrize("error", LOOKUP_ERRORS, ids=["400", "bug"])
async def test_applier_dead_letters_only_the_failed_command(error: Exception) -> None:
    from acct2crm.app.pipeline import CommandApplier
    from acct2crm.model.message import Message
    from acct2crm.records.avro import command_type
    from acct2crm.records.convert import command_record
    from tests.unit.app.test_pipeline import Sent

    crm = OneLaneLookupFails("BAD", error)
    sent = Sent()

    async def seed() -> None:
        return None

    applier = CommandApplier(engine_for(crm, seeded=False), sent.outputs(), seed)
    messages = [
        Message("commands", 0, offset, b"k", command_type().encode(command_record(i, offset)))
        for offset, i in enumerate(lanes_batch())
    ]
    await applier.handle_batch(messages)
    assert [r["action"] for r in sent.results] == ["created", "failed", "created", "updated"]
    assert [d["offset"] for d in sent.dead] == [1]
    assert sent.dead[0]["error"] == type(error).__name__


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
