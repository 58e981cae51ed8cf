"""The reference CRM's accounts over real HTTP: isolation, creation, restart, scoped faults.

``python -m refcrm --fault-injection`` as the stack starts it, on a free port
with its own SQLite file, once for the module (the restart test starts its
own). Account ids are unique per test so tests do not depend on each other.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.refcrm_service import NORMAL, TOKEN, Service, code, running_refcrm


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from running_refcrm(tmp_path_factory, "refcrm-accounts")


@pytest.fixture(scope="module")
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture(autouse=True)
def normal_service(admin: httpx.Client) -> Iterator[None]:
    """Every test ends with every account's faults back to normal, even when it fails."""
    yield
    assert admin.post("/admin/faults", json=NORMAL).status_code == 200


def account_id() -> str:
    return f"t_{secrets.token_hex(4)}"


def new_account(admin: httpx.Client) -> str:
    """A fresh account's token."""
    reply = admin.post("/admin/accounts", json={"account": account_id()})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["token"])


@pytest.fixture
def two(service: Service, admin: httpx.Client) -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    """(account A's id, A's client, B's client)."""
    a_id, b_id = account_id(), account_id()
    tokens = [admin.post("/admin/accounts", json={"account": i}).json()["token"]
              for i in (a_id, b_id)]
    with service.client(tokens[0]) as a, service.client(tokens[1]) as b:
        yield a_id, a, b


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    fields.setdefault("code", code())
    fields.setdefault("name", f"Customer {fields['code']}")
    reply = client.post("/api/customers", json=fields)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def items(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    reply = client.get("/api/customers", params=params)
    assert reply.status_code == 200, reply.text
    return list(reply.json()["items"])


# -------------------------------------------------------------- isolation
def test_a_token_never_sees_nor_changes_another_accounts_records(
    two: tuple[str, httpx.Client, httpx.Client], admin: httpx.Client
) -> None:
    _, a, b = two
    k = code("ISO")
    mine = create(a, code=k)
    assert items(b, code=k) == []
    assert items(admin, code=k) == []  # the default account is an account like the others
    assert b.get(f"/api/customers/{mine['id']}").status_code == 404
    assert b.patch(f"/api/customers/{mine['id']}", json={"name": "taken"}).status_code == 404
    assert all(r["id"] != mine["id"] for r in items(b, page=1, page_size=500))
    assert a.get(f"/api/customers/{mine['id']}").json() == mine


def test_the_same_code_lives_in_two_accounts_and_stays_unique_in_each(
    two: tuple[str, httpx.Client, httpx.Client],
) -> None:
    _, a, b = two
    k = code("SAME")
    in_a = create(a, code=k)
    in_b = create(b, code=f" {k.lower()} ")
    assert in_a["id"] != in_b["id"]
    assert items(a, code=k) == [in_a]
    assert items(b, code=k) == [in_b]
    duplicate = a.post("/api/customers", json={"code": k, "name": "again"})
    assert duplicate.status_code == 409
    assert duplicate.json()["existing_id"] == in_a["id"]
    renamed = create(b)
    assert b.patch(f"/api/customers/{renamed['id']}", json={"code": k}).json()[
        "existing_id"
    ] == in_b["id"]


def test_stats_per_account_and_in_total(
    two: tuple[str, httpx.Client, httpx.Client], admin: httpx.Client
) -> None:
    a_id, a, b = two
    total_before = admin.get("/admin/stats").json()
    create(a)
    create(a)
    create(b)
    mine = admin.get("/admin/stats", params={"account": a_id}).json()
    assert (mine["account"], mine["writes"], mine["creates"], mine["customers"]) == (
        a_id, 2, 2, 2,
    )
    total = admin.get("/admin/stats").json()
    assert "account" not in total
    assert set(total) == set(total_before)
    assert total["writes"] - total_before["writes"] == 3
    assert total["customers"] - total_before["customers"] == 3
    assert admin.get("/admin/stats", params={"account": "nobody"}).status_code == 404


# --------------------------------------------------------------- creation
def test_creating_an_account_is_idempotent(service: Service, admin: httpx.Client) -> None:
    name = account_id()
    first = admin.post("/admin/accounts", json={"account": name})
    again = admin.post("/admin/accounts", json={"account": name})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json() == {"account": name, "token": first.json()["token"]}
    assert first.json()["token"] != TOKEN
    assert name in admin.get("/admin/accounts").json()["accounts"]
    with service.client(first.json()["token"]) as client:
        assert client.get("/api/customers", params={"code": "X"}).status_code == 200
    default = admin.post("/admin/accounts", json={"account": "default"})
    assert default.json() == {"account": "default", "token": TOKEN}
    assert first.json()["token"] not in service.log_path.read_text()


@pytest.mark.parametrize(
    "body", [{"account": "Has-Caps"}, {"account": ""}, {"account": "x" * 33}, {"account": 1},
             {}, {"account": "ok", "token": "mine"}, []],
)
def test_a_bad_account_id_is_422(admin: httpx.Client, body: Any) -> None:
    before = admin.get("/admin/accounts").json()
    reply = admin.post("/admin/accounts", json=body)
    assert reply.status_code == 422, reply.text
    assert admin.get("/admin/accounts").json() == before


def test_only_the_admin_token_may_create_accounts(service: Service, admin: httpx.Client) -> None:
    token = new_account(admin)
    for given in (token, "wrong", None):
        with service.client(given) as other:
            reply = other.post("/admin/accounts", json={"account": account_id()})
            assert reply.status_code == 401
            assert other.get("/admin/stats").status_code == 401
            assert other.post("/admin/faults", json={"down": True}).status_code == 401
    assert admin.get("/admin/faults").json()["down"] is False


def test_accounts_survive_a_restart_and_exist_without_fault_injection(tmp_path: Path) -> None:
    db = tmp_path / "crm" / "crm.sqlite3"
    first = Service(db, tmp_path / "first.log")  # no fault injection
    try:
        with first.client() as admin:
            token = admin.post("/admin/accounts", json={"account": "acme"}).json()["token"]
            assert admin.get("/admin/faults").status_code == 404
        with first.client(token) as acme:
            record = create(acme, code="KH001")
    finally:
        first.stop()
    second = Service(db, tmp_path / "second.log")
    try:
        with second.client() as admin:
            assert "acme" in admin.get("/admin/accounts").json()["accounts"]
            again = admin.post("/admin/accounts", json={"account": "acme"})
            assert (again.status_code, again.json()["token"]) == (200, token)
            assert items(admin, code="KH001") == []
        with second.client(token) as acme:
            assert acme.get(f"/api/customers/{record['id']}").json() == record
    finally:
        second.stop()


# ------------------------------------------------------------------ faults
def test_one_account_down_while_another_answers(
    two: tuple[str, httpx.Client, httpx.Client], admin: httpx.Client
) -> None:
    a_id, a, b = two
    reply = admin.post("/admin/faults", json={"account": a_id, "down": True})
    assert reply.status_code == 200
    assert reply.json() == {**NORMAL, "down": True}
    assert admin.get("/admin/faults", params={"account": a_id}).json()["down"] is True
    assert admin.get("/admin/faults").json() == NORMAL
    down = a.post("/api/customers", json={"code": code(), "name": "x"})
    assert down.status_code == 503
    assert int(down.headers["Retry-After"]) >= 1
    assert b.post("/api/customers", json={"code": code(), "name": "x"}).status_code == 201
    assert admin.get("/api/customers", params={"code": "X"}).status_code == 200
    admin.post("/admin/faults", json={"account": a_id, "down": False})
    assert a.get("/api/customers", params={"code": "X"}).status_code == 200


def test_faults_without_an_account_reach_every_account(
    two: tuple[str, httpx.Client, httpx.Client], admin: httpx.Client
) -> None:
    _, a, b = two
    admin.post("/admin/faults", json={"error_rate": 1.0})
    for client in (a, b, admin):
        assert client.get("/api/customers", params={"code": "X"}).status_code == 500
    admin.post("/admin/faults", json={"error_rate": 0})
    for client in (a, b, admin):
        assert client.get("/api/customers", params={"code": "X"}).status_code == 200


def test_latency_and_errors_are_scoped_to_the_account(
    two: tuple[str, httpx.Client, httpx.Client], admin: httpx.Client
) -> None:
    a_id, a, b = two
    # a delay far above a local call's time, so a busy machine cannot pass for one
    admin.post("/admin/faults", json={"account": a_id, "latency_ms": 1500, "error_rate": 1.0})
    started = time.monotonic()
    assert a.get("/api/customers", params={"code": "X"}).status_code == 500
    assert time.monotonic() - started >= 1.5
    started = time.monotonic()
    assert b.get("/api/customers", params={"code": "X"}).status_code == 200
    assert time.monotonic() - started < 1.5


def test_faults_for_an_unknown_account_are_404(admin: httpx.Client) -> None:
    reply = admin.post("/admin/faults", json={"account": "nobody", "down": True})
    assert reply.status_code == 404
    assert admin.get("/admin/faults", params={"account": "nobody"}).status_code == 404
    assert admin.get("/admin/faults").json() == NORMAL


def test_the_rate_limit_is_per_account(
    two: tuple[str, httpx.Client, httpx.Client], admin: httpx.Client
) -> None:
    a_id, a, b = two
    admin.post("/admin/faults", json={"rate_limit_per_s": 2})  # each account: 2/s
    statuses = [a.get("/api/customers", params={"code": "X"}).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]
    assert [b.get("/api/customers", params={"code": "X"}).status_code for _ in range(2)] == [
        200, 200,
    ]
    admin.post("/admin/faults", json={"rate_limit_per_s": 0})
    admin.post("/admin/faults", json={"account": a_id, "rate_limit_per_s": 1})
    assert a.get("/api/customers", params={"code": "X"}).status_code == 200
    limited = a.get("/api/customers", params={"code": "X"})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert all(b.get("/api/customers", params={"code": "X"}).status_code == 200
               for _ in range(20))
    stats = admin.get("/admin/stats", params={"account": a_id}).json()
    assert stats["rate_limited"] >= 2
