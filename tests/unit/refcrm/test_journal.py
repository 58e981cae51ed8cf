"""The reference CRM's write journal: what a test reads to know the order writes landed in."""

from __future__ import annotations

import httpx

from refcrm.app import create_app

AUTH = {"Authorization": "Bearer secret"}


def client(rate_limit_per_s: int = 0) -> httpx.AsyncClient:
    """The app in-process, no server (its store closes with the test)."""
    app = create_app(":memory:", "secret", rate_limit_per_s=rate_limit_per_s)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crm")


async def test_accepted_writes_are_listed_in_order_without_customer_values() -> None:
    async with client() as crm:
        made = await crm.post(
            "/api/customers", json={"code": " kh1 ", "name": "Nguyễn Văn Ánh"}, headers=AUTH
        )
        first = made.json()
        clash = await crm.post("/api/customers", json={"code": "KH1", "name": "x"}, headers=AUTH)
        assert clash.status_code == 409
        await crm.patch(
            f"/api/customers/{first['id']}", json={"code": "KH2", "phone": "0900"}, headers=AUTH
        )
        gone = await crm.patch("/api/customers/999", json={"name": "y"}, headers=AUTH)
        assert gone.status_code == 404
        body = (await crm.get("/admin/writes", headers=AUTH)).json()
        assert [(e["seq"], e["kind"], e["id"], e["code"]) for e in body["items"]] == [
            (1, "create", first["id"], "kh1"),
            (2, "update", first["id"], "KH2"),
        ]
        assert body["items"][1]["fields"] == ["code", "phone"]
        assert "Nguyễn" not in str(body) and "0900" not in str(body)
        assert body["last_seq"] == 2
        later = (await crm.get("/admin/writes", params={"after": 1}, headers=AUTH)).json()
        assert [e["seq"] for e in later["items"]] == [2]
        assert (await crm.get("/admin/stats", headers=AUTH)).json()["writes"] == 2


async def test_every_api_call_is_noted_with_its_answer_and_retry_after() -> None:
    async with client(rate_limit_per_s=1) as crm:
        assert (await crm.get("/api/customers", params={"code": "KH1"})).status_code == 401
        assert (await crm.get("/api/customers", params={"code": "KH1"}, headers=AUTH)).is_success
        refused = await crm.get("/api/customers/5", headers=AUTH)
        assert refused.status_code == 429
        body = (await crm.get("/admin/calls", headers=AUTH)).json()
        calls = [(c["method"], c["target"], c["status"], c["retry_after"]) for c in body["items"]]
        assert calls == [
            ("GET", "/api/customers?code=KH1", 401, None),
            ("GET", "/api/customers?code=KH1", 200, None),
            ("GET", "/api/customers/5", 429, refused.headers["Retry-After"]),
        ]
        stamps = [c["at"] for c in body["items"]]
        assert stamps == sorted(stamps)
        assert "secret" not in str(body)


async def test_the_journals_need_the_token() -> None:
    async with client() as crm:
        assert (await crm.get("/admin/writes")).status_code == 401
        assert (await crm.get("/admin/calls")).status_code == 401
