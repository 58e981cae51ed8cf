"""Every row of the rules table (docs/rules.md), and the cases under it, decided purely."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from acct2crm.model.crm import CrmRecord
from acct2crm.rules.change import UNAVAILABLE, Action, Change, Op, Position
from acct2crm.rules.codes import clean_text, code_key
from acct2crm.rules.decide import (
    Create,
    Outcome,
    Patch,
    SyncIntent,
    classify,
    decide,
    pick_ours,
)
from acct2crm.rules.scope import DEFAULT_SCOPE, SyncScope, parse_scope
from tests.support.changes import change, row


def crm(id_: int, code: str, ref: str | None = None, **fields: str | None) -> CrmRecord:
    base: dict[str, str | None] = {"code": code, "name": f"Customer {code}", "branch_code": "HQ"}
    base.update(fields)
    return CrmRecord(id=id_, fields=base, external_ref=ref)


def intent_of(c: Change) -> SyncIntent:
    result = classify(c, DEFAULT_SCOPE)
    assert isinstance(result, SyncIntent), result
    return result


# ------------------------------------------------------------- code matching


@pytest.mark.parametrize(
    ("a", "b"),
    [("kh001 ", "KH001"), ("  Kh001", "kH001"), ("Đ01", "đ01"), ("Straße", "STRASSE")],
)
def test_codes_match_by_casefold_nfc_strip(a: str, b: str) -> None:
    assert code_key(a) == code_key(b)


def test_nfd_text_is_sent_as_nfc_and_empty_as_null() -> None:
    nfd = unicodedata.normalize("NFD", "  Nguyễn Văn Ánh ")
    assert nfd != "Nguyễn Văn Ánh"
    assert clean_text(nfd) == unicodedata.normalize("NFC", "Nguyễn Văn Ánh")
    assert clean_text("   ") is None
    assert clean_text(None) is None


# ------------------------------------------------------------- the rules table

INSERT = change("c", after=row(1, "KH001"))
UPDATE_SAME = change("u", before=row(1, "KH001"), after=row(1, "KH001", name="New name"))
RENAME = change("u", before=row(1, "KH001"), after=row(1, "KH009", name="Customer KH001"))


@pytest.mark.parametrize(
    ("label", "c", "view", "action", "call"),
    [
        ("R1a insert, code free", INSERT, {}, Action.CREATED, Create),
        (
            "R1b insert, code held by sales",
            INSERT,
            {"kh001": crm(7, "kh001 ")},
            Action.SKIPPED_DUPLICATE_CODE,
            None,
        ),
        (
            "R1b insert, code held by another row's record",
            INSERT,
            {"kh001": crm(7, "KH001", "default:99")},
            Action.SKIPPED_DUPLICATE_CODE,
            None,
        ),
        (
            "insert seen again: our own record",
            INSERT,
            {"kh001": crm(7, "KH001", "default:1")},
            Action.CREATED,
            None,
        ),
        (
            "R2a edited, same code",
            UPDATE_SAME,
            {"kh001": crm(7, "KH001")},
            Action.UPDATED,
            Patch,
        ),
        (
            "R2a unchanged when no mapped field differs",
            UPDATE_SAME,
            {"kh001": crm(7, "KH001", name="New name")},
            Action.UNCHANGED,
            None,
        ),
        (
            "R2a edited into a code the CRM already has",
            RENAME,
            {"kh009": crm(8, "KH009"), "kh001": crm(7, "KH001")},
            Action.UPDATED,
            Patch,
        ),
        (
            "R2b renamed: CRM has K0 only",
            RENAME,
            {"kh009": None, "kh001": crm(7, "KH001", "default:1")},
            Action.UPDATED,
            Patch,
        ),
        (
            "R2c neither K nor K0",
            RENAME,
            {"kh009": None, "kh001": None},
            Action.CREATED,
            Create,
        ),
        ("R2c same code, not in CRM", UPDATE_SAME, {"kh001": None}, Action.CREATED, Create),
    ],
)
def test_rules_table(
    label: str,
    c: Change,
    view: dict[str, CrmRecord | None],
    action: Action,
    call: type[Create] | type[Patch] | None,
) -> None:
    decision = decide(intent_of(c), view)
    assert decision.action is action, label
    if call is None:
        assert decision.call is None, label
    else:
        assert isinstance(decision.call, call), label
        # every write the sync makes marks the record as this row's, creates included
        assert decision.call.fields["external_ref"] == "default:1", label
        if isinstance(decision.call, Create):
            assert decision.call.fields["code"] == intent_of(c).code, label


def test_r2a_updates_the_record_holding_k_not_k0() -> None:
    decision = decide(intent_of(RENAME), {"kh009": crm(8, "KH009"), "kh001": crm(7, "KH001")})
    assert isinstance(decision.call, Patch)
    assert decision.call.crm_id == 8
    assert decision.call.fields["external_ref"] == "default:1"


def test_r2b_rename_patches_k0_with_the_new_code() -> None:
    decision = decide(intent_of(RENAME), {"kh009": None, "kh001": crm(7, "KH001")})
    assert isinstance(decision.call, Patch)
    assert decision.call.crm_id == 7
    assert decision.call.fields["code"] == "KH009"
    assert "R2b" in decision.reason


def test_r2a_patch_sends_only_changed_fields() -> None:
    decision = decide(intent_of(UPDATE_SAME), {"kh001": crm(7, "KH001")})
    assert isinstance(decision.call, Patch)
    assert decision.call.fields == {"name": "New name", "external_ref": "default:1"}


def test_r1a_create_carries_all_mapped_fields_and_external_ref() -> None:
    decision = decide(intent_of(INSERT), {})
    assert isinstance(decision.call, Create)
    assert decision.call.fields["code"] == "KH001"
    assert decision.call.fields["external_ref"] == "default:1"
    assert set(decision.call.fields) >= {"name", "tax_code", "branch_code", "email"}


def test_code_case_change_is_an_update_of_the_same_record() -> None:
    c = change("u", before=row(1, "kh001"), after=row(1, "KH001"))
    intent = intent_of(c)
    assert intent.previous_code is None
    decision = decide(intent, {"kh001": crm(7, "kh001")})
    assert isinstance(decision.call, Patch)
    assert decision.call.fields["code"] == "KH001"


# R2d: the CRM holds this row (external_ref "default:1") under a code that is neither K nor K0
OURS = crm(7, "OLD-7", "default:1", phone="0900")


@pytest.mark.parametrize(
    ("label", "c", "view", "ours", "action", "rule", "crm_id"),
    [
        ("R2d rename", RENAME, {"kh009": None, "kh001": None}, OURS, Action.UPDATED, "R2d", 7),
        ("R2d same code", UPDATE_SAME, {"kh001": None}, OURS, Action.UPDATED, "R2d", 7),
        (
            "R2c: the record names another row",
            RENAME,
            {"kh009": None, "kh001": None},
            crm(7, "OLD-7", "default:10"),
            Action.CREATED,
            "R2c",
            None,
        ),
        (
            "R2c: a record made in the CRM",
            UPDATE_SAME,
            {"kh001": None},
            crm(7, "OLD-7"),
            Action.CREATED,
            "R2c",
            None,
        ),
        ("R2c: nothing names the row", UPDATE_SAME, {"kh001": None}, None, Action.CREATED, "R2c",
         None),
        ("R2a wins over R2d", UPDATE_SAME, {"kh001": crm(8, "KH001")}, OURS, Action.UPDATED,
         "R2a", 8),
        (
            "R2b wins over R2d",
            RENAME,
            {"kh009": None, "kh001": crm(8, "KH001")},
            OURS,
            Action.UPDATED,
            "R2b",
            8,
        ),
        ("an insert is never R2d", INSERT, {"kh001": None}, OURS, Action.CREATED, "R1a", None),
    ],
)
def test_r2d_table(label, c, view, ours, action, rule, crm_id) -> None:  # type: ignore[no-untyped-def]
    decision = decide(intent_of(c), view, ours)
    assert decision.action is action, label
    assert decision.reason.startswith(f"{rule}:"), (label, decision.reason)
    assert decision.crm_id == crm_id, label
    if crm_id is None:
        assert isinstance(decision.call, Create), label


def test_r2d_patch_renames_our_record_to_k_and_sends_changed_fields() -> None:
    decision = decide(intent_of(RENAME), {"kh009": None, "kh001": None}, OURS)
    assert isinstance(decision.call, Patch)
    assert decision.call.crm_id == 7
    assert decision.call.fields["code"] == "KH009"
    assert decision.call.fields["phone"] is None  # accounting's value wins
    assert decision.call.fields["external_ref"] == "default:1"
    assert "OLD-7" in decision.reason and "KH009" in decision.reason


def test_pick_ours_matches_the_ref_exactly_and_keeps_the_oldest() -> None:
    records = [crm(9, "B", "default:1"), crm(3, "C", "default:10"), crm(5, "A", "default:1")]
    picked = pick_ours(records, "default:1")
    assert picked is not None and picked.id == 5
    assert pick_ours([crm(3, "C", "default:10"), crm(4, "D")], "default:1") is None


# ------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("label", "c", "action"),
    [
        ("R3 delete", change("d", before=row(1)), Action.IGNORED_DELETE),
        ("truncate", change("t"), Action.IGNORED_DELETE),
        ("snapshot row", change("r", after=row(1)), Action.IGNORED_SNAPSHOT),
        ("R1 vendor only", change("c", after=row(1, is_customer=False, is_vendor=True)),
         Action.IGNORED_OUT_OF_SCOPE),
        ("R2 leaves scope", change("u", before=row(1), after=row(1, is_customer=False)),
         Action.IGNORED_OUT_OF_SCOPE),
        ("bad row: blank code", change("c", after=row(1, code="   ")), Action.FAILED),
    ],
)
def test_classify_settles_without_crm(label: str, c: Change, action: Action) -> None:
    outcome = classify(c, DEFAULT_SCOPE)
    assert isinstance(outcome, Outcome), label
    assert outcome.action is action, label
    assert outcome.reason


def test_row_becoming_a_customer_is_synced() -> None:
    c = change("u", before=row(1, is_customer=False), after=row(1, is_customer=True))
    intent = intent_of(c)
    assert decide(intent, {"kh001": None}).action is Action.CREATED


def test_backfill_applies_r1_to_snapshot_rows() -> None:
    c = change("r", after=row(1))
    intent = classify(c, DEFAULT_SCOPE, snapshot_as_insert=True)
    assert isinstance(intent, SyncIntent)
    assert intent.op is Op.BACKFILL
    assert decide(intent, {}).action is Action.CREATED
    assert decide(intent, {"kh001": crm(3, "KH001")}).action is Action.SKIPPED_DUPLICATE_CODE


def test_replayed_change_is_recognised_by_position() -> None:
    outcome = classify(UPDATE_SAME, DEFAULT_SCOPE, applied=Position(lsn=100))
    assert isinstance(outcome, Outcome)
    assert outcome.action is Action.UNCHANGED
    assert "replay" in outcome.reason
    assert isinstance(classify(UPDATE_SAME, DEFAULT_SCOPE, applied=Position(lsn=99)), SyncIntent)


def test_toast_placeholder_means_unchanged_and_never_reaches_the_crm() -> None:
    long = "Số 1 " * 3000
    c = change("u", before=row(1, address=long), after=row(1, address=UNAVAILABLE, name="X"))
    intent = intent_of(c)
    assert intent.fields["address"] == clean_text(long)
    blind = change("u", before=None, after=row(1, address=UNAVAILABLE, name="X"))
    intent = intent_of(blind)
    assert "address" not in intent.fields
    decision = decide(intent, {"kh001": None})
    assert isinstance(decision.call, Create)
    assert UNAVAILABLE not in decision.call.fields.values()


def test_text_fields_are_nfc_stripped_and_empty_is_null() -> None:
    nfd_name = unicodedata.normalize("NFD", " Công ty Cổ phần Ánh Dương ")
    intent = intent_of(change("c", after=row(1, "  kh001 ", name=nfd_name, email="  ")))
    assert intent.code == "kh001"
    assert intent.fields["name"] == unicodedata.normalize("NFC", "Công ty Cổ phần Ánh Dương")
    assert intent.fields["email"] is None


# ------------------------------------------------------------- scope


def test_scope_branches_and_predicate() -> None:
    scope = parse_scope(
        {"branches": ["HN"], "where": [{"column": "tax_code", "op": "present"}]}
    )
    assert scope.contains(row(1, branch_code="hn", tax_code="0101234567"))
    assert not scope.contains(row(1, branch_code="HQ", tax_code="0101234567"))
    assert not scope.contains(row(1, branch_code="HN", tax_code=" "))
    out = classify(change("c", after=row(1, branch_code="HQ")), scope)
    assert isinstance(out, Outcome)
    assert out.action is Action.IGNORED_OUT_OF_SCOPE


def test_scope_can_include_vendors_when_asked() -> None:
    scope = SyncScope(customers_only=False)
    assert scope.contains(row(1, is_customer=False, is_vendor=True))


@pytest.mark.parametrize(
    "bad",
    [
        {"branch": ["HQ"]},
        {"branches": "HQ"},
        {"where": [{"column": "nope"}]},
        {"where": [{"column": "code", "op": "like"}]},
        {"where": [{"column": "code", "op": "in", "value": "A"}]},
    ],
)
def test_scope_file_errors_are_clear(bad: dict[str, Any]) -> None:
    from acct2crm.errors import ConfigError

    with pytest.raises(ConfigError, match="scope"):
        parse_scope(bad)
