"""The reference CRM's accounts without HTTP: store views, the registry, persistence, faults."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from refcrm.accounts import Accounts, UnknownAccount
from refcrm.faults import Faults
from refcrm.stats import Stats
from refcrm.store import CodeTaken, CustomerStore
from refcrm.validation import InvalidFields

ADMIN = "admin-token"


def registry(store: CustomerStore, rate_limit_per_s: int = 0) -> Accounts:
    return Accounts(store, ADMIN, base_rate_limit_per_s=rate_limit_per_s, totals=Stats())


# ------------------------------------------------------------------ store
def test_each_account_sees_only_its_own_records() -> None:
    store = CustomerStore(":memory:")
    a, b = store.for_account("a"), store.for_account("b")
    mine = a.create({"code": "KH001", "name": "A's"})
    theirs = b.create({"code": "kh001 ", "name": "B's"})  # same code, another account
    assert mine["id"] != theirs["id"]
    assert a.find_by_code("KH001") == [mine]
    assert b.find_by_code("KH001") == [theirs]
    assert store.find_by_code("KH001") == []  # the default account has none
    assert b.get(mine["id"]) is None
    assert b.update(mine["id"], {"name": "taken over"}) is None
    assert a.get(mine["id"]) == mine
    assert [r["id"] for r in a.page(1, 10).items] == [mine["id"]]
    assert (a.count(), b.count(), store.count(), store.count_all()) == (1, 1, 0, 2)
    with pytest.raises(CodeTaken) as caught:
        a.create({"code": "kh001", "name": "again"})
    assert caught.value.existing_id == mine["id"]
    store.close()


def test_lookups_by_codes_and_external_ref_stay_within_the_account() -> None:
    store = CustomerStore(":memory:")
    a, b = store.for_account("a"), store.for_account("b")
    mine = a.create({"code": "KH001", "name": "A's", "external_ref": "a:1"})
    b.create({"code": "KH001", "name": "B's", "external_ref": "a:1"})
    b.create({"code": "KH002", "name": "B's"})
    assert a.find_by_codes(["kh001", "KH002"]) == [mine]
    assert a.find_by_external_ref("a:1") == [mine]
    assert store.find_by_external_ref("a:1") == []
    store.close()


def test_a_rename_conflicts_only_within_the_account() -> None:
    store = CustomerStore(":memory:")
    a, b = store.for_account("a"), store.for_account("b")
    a.create({"code": "OLD", "name": "n"})
    taken = a.create({"code": "NEW", "name": "n"})
    other = b.create({"code": "OLD", "name": "n"})
    renamed = b.update(other["id"], {"code": "NEW"})
    assert renamed is not None
    assert renamed["code"] == "NEW"
    with pytest.raises(CodeTaken) as caught:
        a.update(a.find_by_code("OLD")[0]["id"], {"code": "new"})
    assert caught.value.existing_id == taken["id"]
    store.close()


OLD_LAYOUT = """
CREATE TABLE customer (
  id INTEGER PRIMARY KEY AUTOINCREMENT, code TEXT NOT NULL, code_key TEXT NOT NULL,
  name TEXT NOT NULL, tax_code TEXT, address TEXT, phone TEXT, email TEXT,
  contact_name TEXT, branch_code TEXT, external_ref TEXT,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX customer_code_key_uq ON customer (code_key);
INSERT INTO customer (code, code_key, name, created_at, updated_at)
VALUES ('KH001', 'kh001', 'Before accounts', '2025-01-01T00:00:00.000000Z',
        '2025-01-01T00:00:00.000000Z');
"""


def test_a_database_from_before_accounts_becomes_the_default_account(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_LAYOUT)
    store = CustomerStore(path)
    [record] = store.find_by_code("kh001")
    assert record["name"] == "Before accounts"
    with pytest.raises(CodeTaken):
        store.create({"code": "KH001", "name": "dup"})
    assert store.for_account("a").create({"code": "KH001", "name": "A"})["code"] == "KH001"
    store.close()
    reopened = CustomerStore(path)  # the migration runs once; opening again is a no-op
    assert reopened.count_all() == 2
    reopened.close()


# --------------------------------------------------------------- registry
def test_the_default_account_has_the_start_up_token_and_sees_the_plain_store() -> None:
    store = CustomerStore(":memory:")
    accounts = registry(store)
    default = accounts.by_token(ADMIN)
    assert default is not None
    assert default.id == "default"
    record = store.create({"code": "K", "name": "n"})
    assert default.store.get(record["id"]) == record
    assert accounts.create("default") == (ADMIN, False)
    assert accounts.ids() == ["default"]
    store.close()


def test_creating_an_account_is_idempotent_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite3"
    store = CustomerStore(path)
    accounts = registry(store)
    token, created = accounts.create("acme_1")
    assert created
    assert token and token != ADMIN
    assert accounts.create("acme_1") == (token, False)
    other, _ = accounts.create("globex")
    assert other != token
    found = accounts.by_token(token)
    assert found is not None
    assert found.id == "acme_1"
    found.store.create({"code": "K", "name": "n"})
    store.close()

    store = CustomerStore(path)
    accounts = registry(store)
    assert accounts.ids() == ["acme_1", "default", "globex"]
    again = accounts.by_token(token)
    assert again is not None
    assert again.id == "acme_1"
    assert [r["code"] for r in again.store.page(1, 10).items] == ["K"]
    assert accounts.create("acme_1") == (token, False)
    store.close()


@pytest.mark.parametrize("given", [None, "", "wrong", ADMIN + " ", ADMIN[:-1]])
def test_an_unknown_token_has_no_account(given: str | None) -> None:
    store = CustomerStore(":memory:")
    accounts = registry(store)
    accounts.create("acme")
    assert accounts.by_token(given) is None
    store.close()


@pytest.mark.parametrize("bad", ["", "A", "a-b", "a b", "x" * 33, "é", 7, None])
def test_account_ids_follow_the_tenant_id_rule(bad: object) -> None:
    store = CustomerStore(":memory:")
    accounts = registry(store)
    with pytest.raises(InvalidFields) as caught:
        accounts.create(bad)  # type: ignore[arg-type]
    assert caught.value.errors[0].field == "account"
    assert accounts.ids() == ["default"]
    store.close()


# ------------------------------------------------------------------ faults
def test_faults_with_an_account_touch_that_account_alone() -> None:
    store = CustomerStore(":memory:")
    accounts = registry(store)
    accounts.create("a")
    accounts.create("b")
    assert accounts.set_faults({"account": "a", "down": True, "rate_limit_per_s": 3}) == Faults(
        down=True, rate_limit_per_s=3
    )
    a, b = accounts.get("a"), accounts.get("b")
    assert a.faults.down
    assert a.bucket.rate == 3
    assert not b.faults.down
    assert b.bucket.rate == 0
    assert accounts.faults == Faults()
    with pytest.raises(UnknownAccount):
        accounts.set_faults({"account": "nobody", "down": True})
    store.close()


def test_faults_without_an_account_apply_to_every_account_and_to_new_ones() -> None:
    store = CustomerStore(":memory:")
    accounts = registry(store, rate_limit_per_s=5)
    accounts.create("a")
    accounts.set_faults({"account": "a", "latency_ms": 50})
    accounts.set_faults({"down": True})
    assert accounts.get("a").faults == Faults(down=True, latency_ms=50)  # other keys kept
    assert accounts.get("default").faults.down
    accounts.create("later")
    assert accounts.get("later").faults.down
    accounts.set_faults({"down": False, "latency_ms": 0})
    assert all(accounts.get(i).faults == Faults() for i in accounts.ids())
    assert accounts.get("a").bucket.rate == 5  # back to the start-up limit
    store.close()


@pytest.mark.parametrize(
    "body", [{"account": "a", "down": "yes"}, {"down": True, "flood": 1}, [], {"account": 3}]
)
def test_invalid_faults_change_nothing(body: object) -> None:
    store = CustomerStore(":memory:")
    accounts = registry(store)
    accounts.create("a")
    with pytest.raises(InvalidFields):
        accounts.set_faults(body)
    assert all(accounts.get(i).faults == Faults() for i in accounts.ids())
    assert accounts.faults == Faults()
    store.close()


def test_each_account_has_its_own_rate_limit_bucket() -> None:
    store = CustomerStore(":memory:")
    accounts = registry(store, rate_limit_per_s=2)
    accounts.create("a")
    accounts.create("b")
    a, b = accounts.get("a"), accounts.get("b")
    assert [a.bucket.take() for _ in range(2)] == [None, None]
    assert a.bucket.take() is not None
    assert b.bucket.take() is None  # a's calls did not spend b's
    store.close()


def test_account_counters_add_to_the_totals() -> None:
    store = CustomerStore(":memory:")
    totals = Stats()
    accounts = Accounts(store, ADMIN, base_rate_limit_per_s=0, totals=totals)
    accounts.create("a")
    accounts.get("a").stats.add("writes", "creates")
    accounts.get("default").stats.add("writes")
    assert accounts.get("a").stats.snapshot()["writes"] == 1
    assert accounts.get("default").stats.snapshot()["creates"] == 0
    assert totals.snapshot()["writes"] == 2
    store.close()
