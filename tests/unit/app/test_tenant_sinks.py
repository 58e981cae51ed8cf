"""Each tenant's commands go through its own sink: its pause, its seeding, its CRM account."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from acct2crm.app.seeding_task import check_seeding
from acct2crm.app.tenant_sinks import TenantSink, TenantSinks, tenant_states
from acct2crm.rules.change import Action, Op, Position
from acct2crm.rules.decide import SyncIntent
from acct2crm.settings import Settings
from acct2crm.sink.engine import Applied
from acct2crm.sink.pacing import RateLimiter, RetryPolicy, WaitState
from acct2crm.sink.seeding import Seeder
from acct2crm.tenants import Tenant, TenantRegistry, default_tenant, tenant_from_entry
from tests.unit.sink.test_seeding import StopsAt

TOPIC = "acct2crm.commands"


def intent(tenant: str, row: int) -> SyncIntent:
    return SyncIntent(tenant=tenant, accounting_id=row, op=Op.CREATE, code=f"C{row}",
                      previous_code=None, fields={"code": f"C{row}"}, position=Position(row))


class RecordingEngine:
    """Applies everything as created, and remembers which rows it was given."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    async def apply_batch(self, intents: Sequence[SyncIntent]) -> list[Applied]:
        self.rows += [i.accounting_id for i in intents]
        return [Applied(i, Action.CREATED, "created") for i in intents]


def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TenantRegistry:
    monkeypatch.setenv("ACME_TOKEN", "acme-secret")
    settings = Settings(home=tmp_path, crm_token="default-secret")
    acme = tenant_from_entry(settings, "acme", {"crm_token_env": "ACME_TOKEN"})
    default = default_tenant(settings)
    return TenantRegistry({default.id: default, acme.id: acme})


def sink_of(tenant: Tenant, engine: RecordingEngine) -> TenantSink:
    seeder = Seeder(tenant.id, StopsAt(hang_at=99), {}, pace=RateLimiter(0),
                    retry=RetryPolicy())
    return TenantSink(tenant=tenant, engine=engine, seeder=seeder,
                      wait_state=WaitState(tenant.id))


def sinks_for(reg: TenantRegistry, gate: Any = None) -> tuple[TenantSinks, dict[str, Any]]:
    engines = {t.id: RecordingEngine() for t in reg}
    sinks = TenantSinks(lambda: reg, lambda t: sink_of(t, engines[t.id]), gate=gate)
    return sinks, engines


async def test_a_batch_is_split_by_tenant_and_outcomes_keep_the_batch_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sinks, engines = sinks_for(registry(tmp_path, monkeypatch))
    batch = [intent("acme", 1), intent("default", 2), intent("acme", 3), intent("ghost", 4)]
    outcomes = await sinks.apply_batch(batch)
    assert [o.intent.accounting_id for o in outcomes] == [1, 2, 3, 4]
    assert engines["acme"].rows == [1, 3] and engines["default"].rows == [2]
    assert [o.action for o in outcomes[:3]] == [Action.CREATED] * 3
    assert outcomes[3].action is Action.FAILED and outcomes[3].error == "ConfigError"


async def test_a_paused_tenant_waits_alone_in_apply_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resumed = asyncio.Event()

    async def gate(tenant: str) -> None:  # acme is paused until resumed
        if tenant == "acme":
            await resumed.wait()

    sinks, engines = sinks_for(registry(tmp_path, monkeypatch), gate)
    held = asyncio.create_task(sinks.apply_tenant("acme", [intent("acme", 1)]))
    done = await asyncio.wait_for(sinks.apply_tenant("default", [intent("default", 2)]), 2)
    assert [o.action for o in done] == [Action.CREATED]
    await asyncio.sleep(0.05)
    assert not held.done() and engines["acme"].rows == []
    resumed.set()
    assert [o.action for o in await asyncio.wait_for(held, 2)] == [Action.CREATED]
    assert engines["acme"].rows == [1]


async def test_status_shows_each_tenants_sink_paused_waiting_or_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sinks, _ = sinks_for(registry(tmp_path, monkeypatch))
    await sinks.apply_batch([intent("acme", 1), intent("default", 2)])
    sinks.sinks["default"].wait_state.waiting("CRM unreachable")
    states = tenant_states(sinks, paused={"acme": 1.0})
    assert states["acme"]["state"] == "paused"
    assert states["default"] == {"state": "waiting_for_crm",
                                 "waiting_reason": "CRM unreachable",
                                 "waiting_kind": "unavailable"}


def fake_app(assigned: set[TP]) -> Any:
    completed = asyncio.Event()
    completed.set()
    return SimpleNamespace(
        rebalancing=False,
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
        consumer=SimpleNamespace(assignment=lambda: assigned),
    )


async def test_a_tenant_is_seeded_where_its_own_partition_is_held() -> None:
    crm = StopsAt(hang_at=1)
    crm.add("C1")
    seeder = Seeder("acme", crm, {}, pace=RateLimiter(0), retry=RetryPolicy())
    await check_seeding(fake_app({TP(TOPIC, 0)}), seeder, TOPIC, partition=3)
    assert not seeder.running  # partition 0 is another tenant's
    await check_seeding(fake_app({TP(TOPIC, 3)}), seeder, TOPIC, partition=3)
    await asyncio.wait_for(crm.reached.wait(), 5)
    assert seeder.running
    await check_seeding(fake_app({TP(TOPIC, 0)}), seeder, TOPIC, partition=3)
    assert not seeder.running
