"""The sink's batched writes against the reference CRM over real HTTP.

One ``python -m refcrm --fault-injection`` for the module; each test works in
an account of its own (the CRM's tenants), with the real ``CrmClient``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import httpx
import pytest

from acct2crm.crm.client import CrmClient
from acct2crm.rules.change import Action
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import RetryPolicy
from tests.support.changes import change, row
from tests.support.refcrm_service import NORMAL, Service, running_refcrm


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from running_refcrm(tmp_path_factory, "refcrm-sink")


@pytest.fixture(scope="module")
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture
def account(admin: httpx.Client) -> Iterator[tuple[str, str]]:
    """A fresh account and its token; its faults are back to normal after the test."""
    name = f"s_{secrets.token_hex(4)}"
    reply = admin.post("/admin/accounts", json={"account": name})
    assert reply.status_code == 201
    yield name, reply.json()["token"]
    assert admin.post("/admin/faults", json={**NORMAL, "account": name}).status_code == 200


def engine(service: Service, token: str, batch_size: int) -> tuple[SinkEngine, CrmClient]:
    """The sink as the worker builds it; ``batch_size`` 0: the setting turns batches off."""
    client = CrmClient.connect(service.url, token)
    cache = CodeCache({}, "default")
    cache.mark_seeded()  # the account starts empty
    sink = SinkEngine(client, cache, {}, retry=RetryPolicy(0.05, 0.2), batch_size=batch_size)
    return sink, client


def intent(op: str, lsn: int, after: dict[str, object], before: dict[str, object] | None = None
           ) -> SyncIntent:
    decided = classify(change(op, before=before, after=after, lsn=lsn), DEFAULT_SCOPE)
    assert isinstance(decided, SyncIntent)
    return decided


def records(admin: httpx.Client, token: str) -> list[dict[str, object]]:
    with httpx.Client(base_url=str(admin.base_url), timeout=15,
                      headers={"Authorization": f"Bearer {token}"}) as own:
        items: list[dict[str, object]] = own.get(
            "/api/customers", params={"page_size": 500}).json()["items"]
    return items


def stats(admin: httpx.Client, name: str) -> dict[str, int]:
    body: dict[str, int] = admin.get("/admin/stats", params={"account": name}).json()
    return body


def test_a_409_and_a_422_in_one_batch_call(
    service: Service, admin: httpx.Client, account: tuple[str, str]
) -> None:
    name, token = account
    tag = secrets.token_hex(3).upper()
    with httpx.Client(base_url=service.url, timeout=15,
                      headers={"Authorization": f"Bearer {token}"}) as own:
        assert own.post("/api/customers", json={"code": f"C{tag}", "name": "Sales"}).status_code \
            == 201
    sink, client = engine(service, token, 100)
    batch = [
        intent("c", 10, row(1, f"A{tag}")),
        intent("c", 20, row(2, f"B{tag}")),
        intent("c", 30, row(3, f"C{tag}")),  # sales has it: 409, decided again
        intent("c", 40, row(4, f"D{tag}", email="not an email")),  # 422
        intent("c", 50, row(5, f"E{tag}")),
    ]
    before = stats(admin, name)

    async def go() -> list[Action]:
        try:
            return [r.action for r in await sink.apply_batch(batch)]
        finally:
            await client.aclose()

    actions = asyncio.run(go())
    assert actions == [Action.CREATED, Action.CREATED, Action.SKIPPED_DUPLICATE_CODE,
                       Action.FAILED, Action.CREATED]
    after = stats(admin, name)
    assert after["batches"] - before["batches"] == 1  # the five writes went in one call
    by_code = {str(r["code"]): r for r in records(admin, token)}
    assert set(by_code) == {f"{c}{tag}" for c in "ABCE"}
    assert by_code[f"C{tag}"]["name"] == "Sales"
    assert [by_code[f"{c}{tag}"]["external_ref"] for c in "ABE"] == [
        "default:1", "default:2", "default:5"]


def test_a_lost_batch_reply_makes_no_duplicate(
    service: Service, admin: httpx.Client, account: tuple[str, str]
) -> None:
    name, token = account
    tag = secrets.token_hex(3).upper()
    assert admin.post(
        "/admin/faults", json={"account": name, "lost_reply_rate": 1.0}).status_code == 200
    sink, client = engine(service, token, 100)
    batch = [intent("c", 10 * (i + 1), row(i + 1, f"L{tag}{i}")) for i in range(20)]

    async def go() -> list[Action]:
        try:
            task = asyncio.create_task(sink.apply_batch(batch))
            for _ in range(200):  # the first batch was applied and its reply lost
                if (await asyncio.to_thread(stats, admin, name))["lost_replies"] >= 1:
                    break
                await asyncio.sleep(0.02)
            await asyncio.to_thread(
                admin.post, "/admin/faults", json={"account": name, "lost_reply_rate": 0})
            return [r.action for r in await task]
        finally:
            await client.aclose()

    actions = asyncio.run(go())
    assert actions == [Action.CREATED] * 20
    assert stats(admin, name)["lost_replies"] >= 1
    found = records(admin, token)
    assert len(found) == 20
    assert sorted(str(r["code"]) for r in found) == sorted(f"L{tag}{i}" for i in range(20))


@pytest.mark.parametrize("batch_limit", [100, 0], ids=["batches", "single-calls"])
def test_swap_and_rotation_stay_exact(
    service: Service, admin: httpx.Client, account: tuple[str, str], batch_limit: int
) -> None:
    name, token = account
    t = secrets.token_hex(2).upper()
    n = 40
    history = [
        intent("c", 10, row(1, f"A{t}")),
        intent("c", 20, row(2, f"B{t}")),
        intent("u", 30, row(1, f"T{t}"), row(1, f"A{t}")),
        intent("u", 40, row(2, f"A{t}"), row(2, f"B{t}")),
        intent("u", 50, row(1, f"B{t}"), row(1, f"T{t}")),
    ]
    history += [intent("c", 100 + i, row(100 + i, f"R{t}{i}")) for i in range(n)]
    history.append(intent("u", 500, row(100, f"X{t}"), row(100, f"R{t}0")))
    history += [
        intent("u", 500 + i, row(100 + i, f"R{t}{i - 1}"), row(100 + i, f"R{t}{i}"))
        for i in range(1, n)
    ]
    history.append(intent("u", 600, row(100, f"R{t}{n - 1}"), row(100, f"X{t}")))
    sink, client = engine(service, token, batch_limit)

    async def go() -> None:
        try:
            for start in range(0, len(history), 7):  # batch boundaries fall inside both
                results = await sink.apply_batch(history[start : start + 7])
                assert Action.FAILED not in [r.action for r in results]
        finally:
            await client.aclose()

    asyncio.run(go())
    assert (stats(admin, name)["batches"] > 0) == (batch_limit > 0)
    ref_of = {str(r["code"]): r["external_ref"] for r in records(admin, token)}
    expected = {f"B{t}": "default:1", f"A{t}": "default:2", f"R{t}{n - 1}": "default:100"}
    expected.update({f"R{t}{i - 1}": f"default:{100 + i}" for i in range(1, n)})
    assert ref_of == expected
