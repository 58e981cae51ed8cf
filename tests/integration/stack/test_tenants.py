"""Many tenants on the real stack: each its own database and CRM account, all through the
one change topic and the one worker; same codes never collide, commit order holds per
tenant, and a tenant added while everything runs is synced without a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from acct2crm.progress import lag
from acct2crm.settings import Settings
from tests.support.sync import Pipeline, unique_tag
from tests.support.tenant_cli import cli, tenant_pipe

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_tenants(stack_settings: Settings) -> Iterator[tuple[str, str]]:
    for tenant_id in ("ta", "tb"):
        cli("tenants", "add", tenant_id)
    yield "ta", "tb"


def _results(pipe: Pipeline, tenant: str, tag: str, count: int) -> list[dict[str, Any]]:
    return pipe.results_where(
        lambda r: r["tenant"] == tenant and str(r.get("code") or "").startswith(tag), count,
        timeout_s=120,
    )


def _replayed(tenant: str, row: int) -> Callable[[dict[str, Any]], bool]:
    return lambda r: (r["tenant"] == tenant and r["accounting_id"] == row
                      and "replay" in r["reason"])


def test_tenants_list_includes_default_and_connects_as_printed(
    two_tenants: tuple[str, str], stack_settings: Settings
) -> None:
    listed = json.loads(cli("tenants", "list", "--json"))
    assert {"default", *two_tenants} <= set(listed)
    assert listed["default"]["crm_token"] == stack_settings.crm_token.get_secret_value()
    assert listed["ta"]["crm_token"] != listed["tb"]["crm_token"]
    assert listed["ta"]["postgres_dsn"].endswith("/accounting_ta")
    again = cli("tenants", "add", "ta")  # idempotent
    assert "already there" in again and "unchanged" in again
    assert json.loads(cli("tenants", "list", "--json")) == listed


def test_a_backfill_of_one_tenant_reads_its_database_and_writes_through_its_lane(
    two_tenants: tuple[str, str], stack_settings: Settings, pipe: Pipeline
) -> None:
    tenant = two_tenants[1]
    p = tenant_pipe(stack_settings, tenant)
    tag = unique_tag("TBF")
    synced = p.insert(f"{tag}-S", name="Synced live")
    # a vendor only: out of scope, so the sync never wrote it; a backfill reads it anyway
    p.insert(f"{tag}-V", name="Vendor", is_customer=False, is_vendor=True)
    # (the out-of-scope outcome is settled on the change path, the create a hop later)
    assert sorted(r["action"] for r in _results(pipe, tenant, tag, 2)) == [
        "created", "ignored_out_of_scope"]
    dry = cli("backfill", "--tenant", tenant, "--dry-run")
    [line] = [x for x in dry.splitlines() if f"{tag}-S" in x]
    assert "unchanged" in line and "already synced" in line  # a replay, said beforehand
    said = cli("backfill", "--tenant", tenant)
    assert " of them synced already" in said
    [again] = pipe.results_where(
        lambda r: r["tenant"] == tenant and r["accounting_id"] == synced and r["op"] == "b", 1,
        timeout_s=120)
    assert again["action"] == "unchanged" and "replay" in again["reason"]
    assert not p.crm_by_code(f"{tag}-V")  # out of scope for this tenant's scope too
    assert not pipe.crm_by_code(f"{tag}-S")  # the default tenant's account never saw it
    with pytest.raises(AssertionError, match="no tenant 'nobody'"):
        cli("backfill", "--tenant", "nobody")
    p.close()


def test_a_tenants_dead_letter_is_decided_again_from_its_own_database(
    two_tenants: tuple[str, str], stack_settings: Settings, pipe: Pipeline
) -> None:
    """The re-drive read the default tenant's row of the same id and wrote that
    customer into this tenant's CRM account."""
    tenant = two_tenants[0]
    p = tenant_pipe(stack_settings, tenant)
    tag = unique_tag("TDL")
    row = p.insert(f"{tag}-A", tax_code="12")  # the reference CRM rejects this tax code
    [failed] = _results(pipe, tenant, tag, 1)
    assert failed["action"] == "failed"
    letters = [json.loads(line) for line in
               cli("dlq", "list", "--tenant", tenant, "--json").splitlines()]
    [letter] = [x for x in letters if x["tenant"] == tenant and x["accounting_id"] == row]
    assert letter["code"] == f"{tag}-A"
    before = {r["id"]: r for r in p.crm_all()}
    said = cli("dlq", "retry", "--offset", str(letter["offset"]))
    assert "sent to the sink" in said, said
    first, again = pipe.results_where(
        lambda r: r["tenant"] == tenant and r["accounting_id"] == row, 2, timeout_s=120)
    assert first == failed
    # its own row as it is now (the tax code still refused), nothing of another tenant's
    assert (again["action"], again["code"]) == ("failed", f"{tag}-A"), again
    assert {r["id"]: r for r in p.crm_all()} == before
    p.close()


def test_two_tenants_interleaved_swaps_with_the_same_codes(
    two_tenants: tuple[str, str], stack_settings: Settings, pipe: Pipeline
) -> None:
    tag = unique_tag()
    a, t, b = f"{tag}-A", f"{tag}-T", f"{tag}-B"
    pipes = {tenant: tenant_pipe(stack_settings, tenant) for tenant in two_tenants}
    since = pipe.crm_write_seq()
    rows: dict[str, list[int]] = {tenant: [] for tenant in pipes}
    for tenant, p in pipes.items():
        rows[tenant].append(p.insert(a, name="First"))
    for tenant, p in pipes.items():
        rows[tenant].append(p.insert(b, name="Second"))
    for tenant, p in pipes.items():
        p.update(rows[tenant][0], code=t)
    for tenant, p in pipes.items():
        p.update(rows[tenant][1], code=a)
    for tenant, p in pipes.items():
        p.update(rows[tenant][0], code=b)

    writes = []
    for tenant, p in pipes.items():
        results = _results(pipe, tenant, tag, 5)
        assert [r["action"] for r in results] == [
            "created", "created", "updated", "updated", "updated"]
        assert [r["code"] for r in results] == [a, b, t, a, b]
        row1, row2 = rows[tenant]
        crm = {r["code"]: r for r in p.crm_all(tag)}
        assert set(crm) == {a, b}
        assert crm[b]["name"] == "First" and crm[b]["external_ref"] == f"{tenant}:{row1}"
        assert crm[a]["name"] == "Second" and crm[a]["external_ref"] == f"{tenant}:{row2}"
        writes = pipe.crm_writes_since(since)
        mine = [(w["kind"], w["code"]) for w in writes
                if w["account"] == tenant and w["code"].startswith(tag)]
        assert mine == [("create", a), ("create", b), ("update", t), ("update", a),
                        ("update", b)]
        p.close()
    # the default tenant's account never saw these codes
    assert pipe.crm_all(tag) == []
    assert not [w for w in writes if w["account"] == "default" and w["code"].startswith(tag)]


def test_tenant_added_while_running_is_synced_without_restart(
    stack_settings: Settings, pipe: Pipeline
) -> None:
    before = pipe_status_pid(stack_settings)
    tenant = "tc"
    cli("tenants", "add", tenant)
    p = tenant_pipe(stack_settings, tenant)
    code = unique_tag()
    row = p.insert(code, name="Added live")
    [result] = _results(pipe, tenant, code, 1)
    assert result["action"] == "created" and result["accounting_id"] == row
    [record] = p.crm_by_code(code)
    assert record["external_ref"] == f"{tenant}:{row}"
    assert pipe_status_pid(stack_settings) == before  # the same worker process
    p.close()


def pipe_status_pid(settings: Settings) -> int | None:
    status = json.loads(cli("status", "--json"))
    pid = status["services"]["worker"]["pid"]
    return int(pid) if pid is not None else None


def test_replaying_a_multi_tenant_topic_from_zero_writes_nothing(
    two_tenants: tuple[str, str], stack_settings: Settings, pipe: Pipeline
) -> None:
    tag = unique_tag()
    rows = {}
    for tenant in two_tenants:
        p = tenant_pipe(stack_settings, tenant)
        rows[tenant] = p.insert(f"{tag}-A")
        p.update(rows[tenant], code=f"{tag}-B")
        p.close()
    for tenant in two_tenants:
        assert len(_results(pipe, tenant, tag, 2)) >= 2
    deadline = time.monotonic() + 120
    while lag(stack_settings) != 0:
        assert time.monotonic() < deadline, "the worker did not catch up"
        time.sleep(0.5)
    writes = pipe.crm_writes()  # every account's
    since = pipe.crm_write_seq()

    done = cli("replay", "--from-offset", "0")
    assert "rewound to offset 0" in done
    for tenant in two_tenants:  # every tenant's changes were read again ...
        again = pipe.results_where(_replayed(tenant, rows[tenant]), 2, timeout_s=180)
        assert [r["action"] for r in again] == ["unchanged", "unchanged"]
    deadline = time.monotonic() + 120
    while lag(stack_settings) != 0:
        assert time.monotonic() < deadline, "the worker did not catch up after the replay"
        time.sleep(0.5)
    # ... and no CRM account received a write
    assert pipe.crm_writes() == writes
    assert pipe.crm_writes_since(since) == []


def test_status_shows_the_tenant_whose_crm_is_down_waiting_with_the_reason(
    two_tenants: tuple[str, str], stack_settings: Settings, pipe: Pipeline
) -> None:
    tenant = two_tenants[0]
    p = tenant_pipe(stack_settings, tenant)
    code = unique_tag()
    with pipe.crm() as crm:
        crm.post("/admin/faults", json={"account": tenant, "down": True}).raise_for_status()
    try:
        row = p.insert(code)
        deadline = time.monotonic() + 60
        while True:
            report = json.loads(cli("status", "--json"))
            sync = report["tenants"][tenant]["sync"]
            if sync["state"] == "waiting_for_crm":
                break
            assert time.monotonic() < deadline, f"status never showed {tenant} waiting: {sync}"
            time.sleep(1)
        assert sync["waiting_reason"]
        assert report["tenants"][tenant]["lag"] >= 1  # its command waits, nothing lost
    finally:
        with pipe.crm() as crm:
            crm.post("/admin/faults", json={"account": tenant, "down": False}).raise_for_status()
    [result] = _results(pipe, tenant, code, 1)
    assert result["action"] == "created" and result["accounting_id"] == row
    p.close()


def _source_of(tenant: str) -> tuple[dict[str, Any], dict[str, Any]]:
    report = json.loads(cli("status", "--json"))
    return report, report["tenants"][tenant]["source"]


def test_status_watches_each_tenants_own_slot_and_heartbeat(
    two_tenants: tuple[str, str], stack_settings: Settings
) -> None:
    """Each tenant's connector reads its database through a slot of its own: one
    tenant's reader can stop alone, and status says which."""
    tenant = two_tenants[1]
    connector = f"{stack_settings.connect_url}/connectors/acct2crm-accounting-customer-{tenant}"
    dsn = json.loads(cli("tenants", "list", "--json"))[tenant]["postgres_dsn"]
    report, source = _source_of(tenant)
    assert source["slot"]["name"].endswith(f"_{tenant}") and source["slot"]["exists"]
    assert not [w for w in report["warnings"] if w.startswith(f"tenant {tenant}:")]
    httpx.put(f"{connector}/stop", timeout=30).raise_for_status()  # its tasks shut down
    try:
        deadline = time.monotonic() + 60
        while source["slot"]["active"]:  # its walsender goes with the stopped task
            assert time.monotonic() < deadline, f"{tenant}'s slot stays active: {source}"
            time.sleep(1)
            report, source = _source_of(tenant)
        with psycopg.connect(dsn, autocommit=True) as conn:  # its last beat, long ago
            conn.execute("UPDATE acct2crm.heartbeat SET beat_at = now() - interval '10 minutes'")
        report, source = _source_of(tenant)
        [warning] = [w for w in report["warnings"] if w.startswith(f"tenant {tenant}:")]
        assert "no Debezium heartbeat for 6" in warning, warning
        assert f"warning: {warning}" in report["problems"]
        assert not report["source"]["warnings"]  # the default tenant's reader goes on
    finally:
        httpx.put(f"{connector}/resume", timeout=30).raise_for_status()
    deadline = time.monotonic() + 90
    while [w for w in report["warnings"] if w.startswith(f"tenant {tenant}:")]:
        assert time.monotonic() < deadline, f"{tenant}'s reader did not beat again: {source}"
        time.sleep(2)
        report, source = _source_of(tenant)
    assert source["slot"]["active"]
