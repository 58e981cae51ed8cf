"""Batches of the reference CRM without HTTP: shape checks and in-order application."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from refcrm.accounts import Account, Accounts
from refcrm.batch import MAX_OPERATIONS, apply_all, checked_operation, operations_of
from refcrm.stats import Stats
from refcrm.store import CustomerStore
from refcrm.validation import InvalidFields


@pytest.fixture
def account() -> Iterator[Account]:
    store = CustomerStore(":memory:")
    accounts = Accounts(store, "admin", base_rate_limit_per_s=0, totals=Stats())
    accounts.create("acme")
    yield accounts.get("acme")
    store.close()


def create(code: str, **fields: Any) -> dict[str, Any]:
    return {"op": "create", "fields": {"code": code, "name": f"Customer {code}", **fields}}


def test_a_409_and_a_422_in_the_middle_leave_the_rest_applied_in_order(
    account: Account,
) -> None:
    existing = account.store.create({"code": "KH001", "name": "sales"})
    results = apply_all(
        account,
        [
            create("KH002"),
            create("kh001 "),  # taken: 409
            create("KH003", tax_code="123"),  # invalid: 422
            {"op": "update", "id": existing["id"], "fields": {"phone": "024"}},
            {"op": "update", "id": 987654, "fields": {"name": "x"}},  # unknown: 404
            create("KH004"),
        ],
    )
    assert [r["status"] for r in results] == [201, 409, 422, 200, 404, 201]
    assert results[0]["record"]["code"] == "KH002"
    assert results[1]["existing_id"] == existing["id"]
    assert "detail" in results[1]
    assert "record" not in results[1]
    assert results[2]["errors"] == [
        {"field": "tax_code", "reason": "must be 10 digits, or 10 digits, '-', 3 digits"}
    ]
    assert results[3]["record"]["phone"] == "024"
    assert results[3]["record"]["updated_at"] > existing["updated_at"]
    assert results[4]["detail"] == "customer 987654 not found"
    assert results[5]["record"]["id"] > results[0]["record"]["id"]
    assert sorted(r["code"] for r in account.store.page(1, 10).items) == [
        "KH001", "KH002", "KH004",
    ]
    stats = account.stats.snapshot()
    assert (stats["writes"], stats["creates"], stats["updates"]) == (3, 2, 1)
    assert (stats["conflicts"], stats["rejected"], stats["not_found"]) == (1, 1, 1)


def test_operations_apply_in_the_order_given(account: Account) -> None:
    record = account.store.create({"code": "P", "name": "n"})
    freed_first = apply_all(
        account,
        [{"op": "update", "id": record["id"], "fields": {"code": "Q"}}, create("P")],
    )
    assert [r["status"] for r in freed_first] == [200, 201]
    taken_first = apply_all(
        account,
        [create("Q"), {"op": "update", "id": record["id"], "fields": {"code": "R"}}],
    )
    assert [r["status"] for r in taken_first] == [409, 200]


def test_an_update_of_another_accounts_record_is_404(account: Account) -> None:
    theirs = account.store.for_account("other").create({"code": "K", "name": "theirs"})
    [result] = apply_all(account, [{"op": "update", "id": theirs["id"], "fields": {"name": "x"}}])
    assert result["status"] == 404
    assert account.store.for_account("other").get(theirs["id"]) == theirs


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        ("create", None),
        ({"op": "delete", "id": 1}, "op"),
        ({"op": ["create"], "fields": {}}, "op"),
        ({"fields": {"code": "K", "name": "n"}}, "op"),
        ({"op": "create"}, "fields"),
        ({"op": "create", "id": 1, "fields": {"code": "K", "name": "n"}}, "id"),
        ({"op": "update", "fields": {}}, "id"),
        ({"op": "update", "id": "1", "fields": {}}, "id"),
        ({"op": "update", "id": True, "fields": {}}, "id"),
        ({"op": "update", "id": 1, "fields": {}, "extra": 1}, "extra"),
    ],
)
def test_a_malformed_operation_is_its_own_422(
    account: Account, operation: Any, field: str | None
) -> None:
    with pytest.raises(InvalidFields) as caught:
        checked_operation(operation)
    assert caught.value.errors[0].field == field
    results = apply_all(account, [operation, create("AFTER")])
    assert [r["status"] for r in results] == [422, 201]


def test_fields_are_validated_as_the_single_call_validates_them(account: Account) -> None:
    results = apply_all(
        account,
        [
            {"op": "create", "fields": {"code": "K"}},
            {"op": "create", "fields": {"code": "K", "name": "n", "id": 3}},
            {"op": "create", "fields": "K"},
        ],
    )
    assert [r["status"] for r in results] == [422, 422, 422]
    assert [r["errors"][0]["field"] for r in results] == ["name", "id", None]


def test_a_batch_holds_at_most_100_operations() -> None:
    ops = [create(f"K{i}") for i in range(MAX_OPERATIONS)]
    assert MAX_OPERATIONS == 100
    assert operations_of({"operations": ops}) == ops
    assert operations_of({"operations": []}) == []
    with pytest.raises(InvalidFields) as caught:
        operations_of({"operations": [*ops, create("ONE_MORE")]})
    assert caught.value.errors[0].field == "operations"


@pytest.mark.parametrize(
    "body", [[], {"ops": []}, {"operations": {}}, {"operations": None}, "x",
             {"operations": [], "atomic": True}],
)
def test_a_body_that_is_not_a_batch_is_refused_whole(body: Any) -> None:
    with pytest.raises(InvalidFields):
        operations_of(body)


def test_a_batch_commits_once_and_keeps_what_succeeded_before_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = CustomerStore(tmp_path / "crm.sqlite3")
    accounts = Accounts(store, "admin", base_rate_limit_per_s=0, totals=Stats())
    mine = accounts.get("default")
    record = mine.store.create({"code": "TAKEN", "name": "n"})

    def broken(*args: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("refcrm.writes.update", broken)
    with pytest.raises(RuntimeError):
        apply_all(mine, [create("KEPT"), create("taken"), {"op": "update", "id": 1, "fields": {}}])
    reader = CustomerStore(tmp_path / "crm.sqlite3")  # another connection sees it committed
    assert [r["code"] for r in reader.page(1, 10).items] == ["TAKEN", "KEPT"]
    assert reader.get(record["id"]) == record
    reader.close()
    store.close()
