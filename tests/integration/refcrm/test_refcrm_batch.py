"""``POST /api/customers/batch`` of the reference CRM over real HTTP.

One ``python -m refcrm --fault-injection`` for the module, on a free port with
its own SQLite file; each test works in an account of its own, so counters and
rate limits of one test never meet another's.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.refcrm_service import NORMAL, Service, code, running_refcrm


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from running_refcrm(tmp_path_factory, "refcrm-batch")


@pytest.fixture(scope="module")
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture
def account(admin: httpx.Client) -> str:
    name = f"b_{secrets.token_hex(4)}"
    assert admin.post("/admin/accounts", json={"account": name}).status_code == 201
    return name


@pytest.fixture
def crm(service: Service, admin: httpx.Client, account: str) -> Iterator[httpx.Client]:
    """The account's client; its faults are back to normal after the test."""
    token = admin.post("/admin/accounts", json={"account": account}).json()["token"]
    with service.client(token) as client:
        yield client
    assert admin.post("/admin/faults", json=NORMAL).status_code == 200


def create_op(k: str | None = None, **fields: Any) -> dict[str, Any]:
    k = k or code("B")
    return {"op": "create", "fields": {"code": k, "name": f"Customer {k}", **fields}}


def update_op(customer_id: int, **fields: Any) -> dict[str, Any]:
    return {"op": "update", "id": customer_id, "fields": fields}


def batch(crm: httpx.Client, operations: list[Any]) -> httpx.Response:
    return crm.post("/api/customers/batch", json={"operations": operations})


def stats(admin: httpx.Client, account: str) -> dict[str, Any]:
    return dict(admin.get("/admin/stats", params={"account": account}).json())


def create(crm: httpx.Client, k: str | None = None) -> dict[str, Any]:
    reply = crm.post("/api/customers", json=create_op(k)["fields"])
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


# ------------------------------------------------------------------ results
def test_a_409_and_a_422_in_the_middle_leave_the_rest_applied_in_order(
    crm: httpx.Client, admin: httpx.Client, account: str
) -> None:
    existing = create(crm)
    before = stats(admin, account)
    first, last = code("FIRST"), code("LAST")
    reply = batch(
        crm,
        [
            create_op(first),
            create_op(existing["code"].lower()),  # 409
            create_op(email="not-an-email"),  # 422
            update_op(existing["id"], phone="024 3826 1234"),
            update_op(987654321, name="nobody"),  # 404
            create_op(last),
        ],
    )
    assert reply.status_code == 200, reply.text
    after = stats(admin, account)
    results = reply.json()["results"]
    assert [r["status"] for r in results] == [201, 409, 422, 200, 404, 201]
    assert results[1]["existing_id"] == existing["id"]
    assert results[1]["detail"]
    assert results[2]["errors"][0]["field"] == "email"
    assert results[4]["detail"]
    assert all("record" not in results[i] for i in (1, 2, 4))
    for i in (0, 3, 5):
        record = results[i]["record"]
        assert crm.get(f"/api/customers/{record['id']}").json() == record
    assert results[0]["record"]["id"] < results[5]["record"]["id"]
    assert results[3]["record"]["phone"] == "024 3826 1234"
    assert results[3]["record"]["updated_at"] > existing["updated_at"]
    delta = {k: after[k] - before[k] for k in before if isinstance(before[k], int)}
    assert delta["writes"] == 3
    assert (delta["creates"], delta["updates"]) == (2, 1)
    assert (delta["conflicts"], delta["rejected"], delta["not_found"]) == (1, 1, 1)
    assert (delta["requests"], delta["batches"], delta["customers"]) == (1, 1, 2)


def test_operations_apply_in_the_order_given(crm: httpx.Client) -> None:
    record = create(crm)
    old, new = record["code"], code("NEW")
    reply = batch(crm, [update_op(record["id"], code=new), create_op(old)])
    assert [r["status"] for r in reply.json()["results"]] == [200, 201]
    reversed_order = batch(crm, [create_op(new), update_op(record["id"], code=code())])
    assert [r["status"] for r in reversed_order.json()["results"]] == [409, 200]


def test_a_noop_update_in_a_batch_still_stamps_updated_at(crm: httpx.Client) -> None:
    record = create(crm)
    reply = batch(crm, [update_op(record["id"]), update_op(record["id"])])
    stamps = [r["record"]["updated_at"] for r in reply.json()["results"]]
    assert record["updated_at"] < stamps[0] < stamps[1]


def test_a_batch_cannot_touch_another_accounts_records(
    crm: httpx.Client, admin: httpx.Client
) -> None:
    theirs = admin.post("/api/customers", json={"code": code("THEIRS"), "name": "x"}).json()
    reply = batch(crm, [update_op(theirs["id"], name="taken"), create_op(theirs["code"])])
    assert [r["status"] for r in reply.json()["results"]] == [404, 201]
    assert admin.get(f"/api/customers/{theirs['id']}").json() == theirs


# ------------------------------------------------------------------- limits
def test_more_than_100_operations_are_refused_whole(
    crm: httpx.Client, admin: httpx.Client, account: str
) -> None:
    too_many = batch(crm, [create_op() for _ in range(101)])
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "operations"
    assert stats(admin, account)["customers"] == 0
    full = batch(crm, [create_op() for _ in range(100)])
    assert full.status_code == 200
    assert [r["status"] for r in full.json()["results"]] == [201] * 100
    assert stats(admin, account)["customers"] == 100


@pytest.mark.parametrize(
    ("raw", "status"),
    [(b"{bad", 400), (b"[]", 422), (b'{"operations": {}}', 422), (b"{}", 422)],
)
def test_a_body_that_is_not_a_batch_is_refused(crm: httpx.Client, raw: bytes, status: int) -> None:
    reply = crm.post(
        "/api/customers/batch", content=raw, headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"]


def test_a_batch_is_one_call_for_the_rate_limit(
    crm: httpx.Client, admin: httpx.Client, account: str
) -> None:
    admin.post("/admin/faults", json={"account": account, "rate_limit_per_s": 1})
    reply = batch(crm, [create_op() for _ in range(50)])
    assert reply.status_code == 200
    assert [r["status"] for r in reply.json()["results"]] == [201] * 50
    limited = batch(crm, [create_op() for _ in range(3)])
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert crm.get("/api/customers", params={"code": "X"}).status_code == 429
    counters = stats(admin, account)
    assert (counters["customers"], counters["writes"], counters["batches"]) == (50, 50, 1)
    assert counters["rate_limited"] == 2


# ------------------------------------------------------------------- faults
@pytest.mark.parametrize(("fault", "status"), [({"down": True}, 503), ({"error_rate": 1.0}, 500)])
def test_a_faulted_batch_fails_whole_and_writes_nothing(
    crm: httpx.Client, admin: httpx.Client, account: str, fault: dict[str, Any], status: int
) -> None:
    record = create(crm)
    admin.post("/admin/faults", json={"account": account, **fault})
    reply = batch(crm, [create_op(), update_op(record["id"], name="changed")])
    assert reply.status_code == status
    assert "results" not in reply.json()
    counters = stats(admin, account)
    assert (counters["customers"], counters["writes"]) == (1, 1)
    admin.post("/admin/faults", json={"account": account, "down": False, "error_rate": 0})
    assert crm.get(f"/api/customers/{record['id']}").json() == record


def test_a_lost_batch_reply_is_502_but_the_writes_are_applied(
    crm: httpx.Client, admin: httpx.Client, account: str
) -> None:
    admin.post("/admin/faults", json={"account": account, "lost_reply_rate": 1.0})
    k = code("LOST")
    reply = batch(crm, [create_op(k)])
    assert reply.status_code == 502
    assert len(crm.get("/api/customers", params={"code": k}).json()["items"]) == 1


def test_a_batch_needs_the_token(service: Service, crm: httpx.Client) -> None:
    with service.client("wrong") as anonymous:
        assert batch(anonymous, [create_op()]).status_code == 401
