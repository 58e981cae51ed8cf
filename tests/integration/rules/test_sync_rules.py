"""docs/rules.md through the real stack: PostgreSQL → Debezium → Kafka → worker → CRM.

One test per rule row and per case under the table. Each test uses codes of
its own so the tests share one running stack in any order.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from acct2crm.rules.scope import SyncScope
from acct2crm.scope_file import write_scope
from acct2crm.settings import Settings
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration


def actions(results: list[dict[str, Any]]) -> list[str]:
    """The actions in the order the worker published them."""
    return [r["action"] for r in results]


def applied(pipe: Pipeline, since: int, tag: str) -> list[tuple[str, str]]:
    """(create|update, code) of this test's CRM writes, in the order the CRM took them."""
    return [
        (w["kind"], w["code"])
        for w in pipe.crm_writes_since(since)
        if w["code"].upper().startswith(tag.upper())
    ]


def test_r1a_insert_creates_the_customer(pipe: Pipeline) -> None:
    code = unique_tag()
    row = pipe.insert(code, tax_code="0101234567", email="ke.toan@example.vn", branch_code="HN")
    [result] = pipe.results([row], 1)
    assert result["action"] == "created"
    assert result["op"] == "c"
    assert result["source"]["lsn"] > 0
    [record] = pipe.crm_by_code(code)
    assert record["id"] == result["crm_id"]
    assert record["external_ref"] == f"default:{row}"
    assert (record["tax_code"], record["email"], record["branch_code"]) == (
        "0101234567", "ke.toan@example.vn", "HN")


def test_r1b_insert_of_a_code_sales_has_touches_nothing(pipe: Pipeline) -> None:
    code = unique_tag()
    sales = pipe.crm_create(code, phone="0988000000")
    row = pipe.insert(f"  {code.lower()} ", phone="0241111111")  # differs in case and spaces
    [result] = pipe.results([row], 1)
    assert result["action"] == "skipped_duplicate_code"
    assert result["crm_id"] == sales["id"]
    [record] = pipe.crm_by_code(code)
    assert record == sales  # not a single field, not even updated_at, changed


def test_r2a_edit_updates_and_no_op_edit_writes_nothing(pipe: Pipeline) -> None:
    code = unique_tag()
    since = pipe.crm_write_seq()
    row = pipe.insert(code)
    pipe.update(row, phone="0909123456")
    pipe.update(row, is_vendor=True)  # unmapped columns only
    results = pipe.results([row], 3)
    assert actions(results) == ["created", "updated", "unchanged"]
    assert applied(pipe, since, code) == [("create", code), ("update", code)]
    [record] = pipe.crm_by_code(code)
    assert record["phone"] == "0909123456"
    assert record["updated_at"] != record["created_at"]
    writes = pipe.crm_writes()
    pipe.update(row, name=f"Customer {code}")  # same value as the CRM holds
    assert actions(pipe.results([row], 4))[-1] == "unchanged"
    assert pipe.crm_writes() == writes


def test_r2a_edit_into_a_code_the_crm_already_has(pipe: Pipeline) -> None:
    tag = unique_tag()
    sales = pipe.crm_create(f"{tag}-S", name="Sales name")
    row = pipe.insert(f"{tag}-A")
    pipe.update(row, code=f"{tag}-s ", name="Accounting name")
    results = pipe.results([row], 2)
    assert actions(results) == ["created", "updated"]
    assert results[1]["crm_id"] == sales["id"]
    [record] = pipe.crm_by_code(f"{tag}-S")
    assert record["name"] == "Accounting name"
    assert record["external_ref"] == f"default:{row}"
    assert len(pipe.crm_by_code(f"{tag}-A")) == 1  # the old record is kept, never deleted


def test_r2b_code_change_renames_the_crm_record(pipe: Pipeline) -> None:
    tag = unique_tag()
    since = pipe.crm_write_seq()
    row = pipe.insert(f"{tag}-OLD")
    pipe.update(row, code=f"{tag}-NEW")
    results = pipe.results([row], 2)
    assert actions(results) == ["created", "updated"]
    assert applied(pipe, since, tag) == [("create", f"{tag}-OLD"), ("update", f"{tag}-NEW")]
    assert "R2b" in results[1]["reason"]
    assert pipe.crm_by_code(f"{tag}-OLD") == []
    [record] = pipe.crm_by_code(f"{tag}-NEW")
    assert record["id"] == results[0]["crm_id"]


def test_r2c_row_becoming_a_customer_is_created(pipe: Pipeline) -> None:
    code = unique_tag()
    row = pipe.insert(code, is_customer=False, is_vendor=True)
    pipe.update(row, is_customer=True)
    results = pipe.results([row], 2)
    assert actions(results) == ["ignored_out_of_scope", "created"]
    assert "R2c" in results[1]["reason"]
    assert len(pipe.crm_by_code(code)) == 1


def test_r2d_row_renamed_while_out_of_scope_keeps_its_one_crm_record(pipe: Pipeline) -> None:
    tag = unique_tag()
    row = pipe.insert(f"{tag}-OLD")
    pipe.update(row, is_customer=False)  # leaves the scope
    pipe.update(row, code=f"{tag}-NEW")  # renamed while out of scope: the sync cannot see it
    pipe.update(row, is_customer=True, phone="0912345678")  # back in scope
    # out-of-scope results are published at once, the sink's later: compare in commit order
    results = sorted(pipe.results([row], 4), key=lambda r: r["source"]["lsn"])
    assert actions(results) == [
        "created", "ignored_out_of_scope", "ignored_out_of_scope", "updated"
    ]
    assert results[3]["reason"].startswith("R2d:"), results[3]["reason"]
    assert results[3]["crm_id"] == results[0]["crm_id"]
    [record] = pipe.crm_all(tag)  # one record, never a second one
    assert record["id"] == results[0]["crm_id"]
    assert (record["code"], record["phone"]) == (f"{tag}-NEW", "0912345678")
    assert record["external_ref"] == f"default:{row}"


def test_r3_delete_keeps_the_crm_record(pipe: Pipeline) -> None:
    code = unique_tag()
    since = pipe.crm_write_seq()
    row = pipe.insert(code)
    pipe.delete(row)
    # a change settled without the CRM (the delete) may be published before an
    # earlier one still waiting on the CRM, so these are matched by position
    results = sorted(pipe.results([row], 2), key=lambda r: r["source"]["lsn"])
    assert actions(results) == ["created", "ignored_delete"]
    assert len(pipe.crm_by_code(code)) == 1
    assert applied(pipe, since, code) == [("create", code)]  # the delete wrote nothing


def test_r5_scope_branches_applies_to_changes_from_then_on(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    path = stack_settings.effective_scope_file
    tag = unique_tag()
    write_scope(path, SyncScope(branches=frozenset({"HN"})))
    try:
        out = pipe.insert(f"{tag}-HQ", branch_code="HQ")
        inside = pipe.insert(f"{tag}-HN", branch_code="HN")
        results = pipe.results([out, inside], 2)
    finally:
        path.unlink()
    by_row = {r["accounting_id"]: r["action"] for r in results}
    assert by_row == {out: "ignored_out_of_scope", inside: "created"}
    assert pipe.crm_by_code(f"{tag}-HQ") == []
    pipe.update(out, phone="0900000001")  # back in scope (default: all branches) → R2c
    assert actions(pipe.results([out], 2))[-1] == "created"


def test_code_swap_across_two_rows(pipe: Pipeline) -> None:
    tag = unique_tag()
    a, t, b = f"{tag}-A", f"{tag}-T", f"{tag}-B"
    since = pipe.crm_write_seq()
    row1 = pipe.insert(a, name="First")
    row2 = pipe.insert(b, name="Second")
    pipe.update(row1, code=t)
    pipe.update(row2, code=a)
    pipe.update(row1, code=b)
    # in commit order; the two creates touch nothing in common, so the sink may
    # publish and apply them in either order (separate lanes run concurrently)
    results = sorted(pipe.results([row1, row2], 5), key=lambda r: r["source"]["lsn"])
    assert actions(results) == ["created", "created", "updated", "updated", "updated"]
    assert [r["code"] for r in results] == [a, b, t, a, b]
    # the CRM received every write that shares a code or a row in commit order:
    # the renames chain (A→T frees A for B→A, which frees B for T→B), and each
    # row's create comes before its renames; any other order meets a 409 or
    # leaves a record on the wrong code
    writes = applied(pipe, since, tag)
    assert [w for w in writes if w[0] == "update"] == [("update", t), ("update", a), ("update", b)]
    assert writes.index(("create", a)) < writes.index(("update", t))
    assert writes.index(("create", b)) < writes.index(("update", a))
    assert len(writes) == 5
    crm = {r["code"]: r for r in pipe.crm_all(tag)}
    assert set(crm) == {a, b}
    assert crm[b]["name"] == "First" and crm[b]["external_ref"] == f"default:{row1}"
    assert crm[a]["name"] == "Second" and crm[a]["external_ref"] == f"default:{row2}"
    created = {r["accounting_id"]: r["crm_id"] for r in results[:2]}
    assert crm[b]["id"] == created[row1] and crm[a]["id"] == created[row2]


def test_vietnamese_nfd_text_arrives_nfc_and_blank_as_null(pipe: Pipeline) -> None:
    code = unique_tag()
    name = "Công ty Cổ phần Thương mại Đức Hạnh"
    row = pipe.insert(code, name=unicodedata.normalize("NFD", f"  {name} "), contact_name="  ")
    pipe.results([row], 1)
    [record] = pipe.crm_by_code(code)
    assert record["name"] == unicodedata.normalize("NFC", name)
    assert record["contact_name"] is None


def test_update_leaving_a_long_address_unchanged(pipe: Pipeline) -> None:
    code = unique_tag()
    address = "Số 12 ngõ 34 phố Huế, Hai Bà Trưng, Hà Nội. " * 300  # ~13 KB: TOASTed
    row = pipe.insert(code, address=address)
    pipe.update(row, phone="0911222333")
    results = pipe.results([row], 2)
    assert actions(results) == ["created", "updated"]
    assert "address" not in results[1]["reason"]
    [record] = pipe.crm_by_code(code)
    assert record["address"] == address.strip()
    assert record["phone"] == "0911222333"
