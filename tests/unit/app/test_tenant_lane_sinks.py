"""Tenant lanes bound to the tenants' own sinks, as the worker wires them (agents.py).

A tenant whose CRM waits holds only its own lane; a tenant missing from the
tenants file becomes dead letters instead of a lane retrying forever; the
status page shows each tenant's wait with its lane's commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from acct2crm.app.command_lanes import (
    PartitionEvents,
    build_lanes,
    tenant_appliers,
    tenant_wait_reason,
)
from acct2crm.app.delivery import Delivery
from acct2crm.app.lanes import TenantLanes
from acct2crm.app.ledger import OffsetLedger, RangeRead
from acct2crm.app.pipeline import CommandApplier
from acct2crm.app.steps import CommandStep
from acct2crm.app.tenant_sinks import TenantSink, TenantSinks
from acct2crm.app.tenant_sync import tenant_sync
from acct2crm.rules.change import Action
from acct2crm.rules.decide import SyncIntent
from acct2crm.sink.engine import Applied
from tests.unit.app.test_lanes import command
from tests.unit.app.test_pipeline import Sent
from tests.unit.app.test_tenant_sinks import registry, sink_of


class HeldEngine:
    """A tenant's engine whose CRM is down until released (its wait state says why)."""

    def __init__(self, sink: list[TenantSink]) -> None:
        self.released = asyncio.Event()
        self.rows: list[int] = []
        self._sink = sink

    async def apply_batch(self, intents: Sequence[SyncIntent]) -> list[Applied]:
        self._sink[0].wait_state.reason = "CRM unavailable (503), retrying"
        await self.released.wait()
        self._sink[0].wait_state.reason = None
        self.rows += [i.accounting_id for i in intents]
        return [Applied(i, Action.CREATED, "created") for i in intents]


class Wired:
    """Ledger, lanes and command step over TenantSinks, as register_agents builds them."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        reg = registry(tmp_path, monkeypatch)  # tenants "default" and "acme"
        self.sent = Sent()
        made: list[TenantSink] = []
        self.acme_engine = HeldEngine(made)
        self.default_rows: list[int] = []

        def make(tenant: Any) -> TenantSink:
            if tenant.id == "acme":
                made.append(sink_of(tenant, self.acme_engine))  # type: ignore[arg-type]
                return made[0]
            engine = sink_of(tenant, _Recording(self.default_rows))  # type: ignore[arg-type]
            return engine

        self.sinks = TenantSinks(lambda: reg, make)
        table: dict[str, Any] = {}

        async def read(topic: str, partition: int, start: int, end: int) -> RangeRead:
            return RangeRead(messages=[], reached=end)

        async def earliest(topic: str, partition: int) -> int:
            return 0

        async def seeded() -> None:
            return None

        self.table = table
        ledger = OffsetLedger(table, read, earliest)
        applier = CommandApplier(self.sinks, self.sent.outputs(), seeded)
        self.lanes: TenantLanes = build_lanes(
            ledger, tenant_appliers(applier, Delivery("test")), PartitionEvents(),
            batch_size=8, max_held=100,
            reason=lambda tenant: tenant_wait_reason(self.sinks, tenant),
        )
        self.step = CommandStep(ledger, self.lanes)


class _Recording:
    def __init__(self, rows: list[int]) -> None:
        self.rows = rows

    async def apply_batch(self, intents: Sequence[SyncIntent]) -> list[Applied]:
        self.rows += [i.accounting_id for i in intents]
        return [Applied(i, Action.CREATED, "created") for i in intents]


async def until(check: Any, tries: int = 200) -> None:
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("never happened")


async def test_a_tenant_whose_crm_is_down_waits_alone_and_shows_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = Wired(tmp_path, monkeypatch)
    await w.step([command(0, "acme", 1, "A1"), command(1, "default", 2, "D1"),
                  command(2, "acme", 3, "A2"), command(3, "default", 4, "D2")])
    await until(lambda: w.default_rows == [2, 4])  # default's commands did not wait
    assert w.acme_engine.rows == []
    view = tenant_sync(w.sinks, w.lanes)
    assert view["acme"]["state"] == "waiting_for_crm"
    assert view["acme"]["waiting_reason"] == "CRM unavailable (503), retrying"
    assert view["acme"]["queued"] == 2
    assert view["default"]["state"] == "running" and view["default"]["queued"] == 0
    w.acme_engine.released.set()
    await w.lanes.drained()
    assert w.acme_engine.rows == [1, 3]  # in order, once the CRM is back
    assert [r["accounting_id"] for r in w.sent.results] == [2, 4, 1, 3]
    await w.lanes.stop_all()


async def test_a_tenant_missing_from_the_tenants_file_is_dead_lettered_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = Wired(tmp_path, monkeypatch)
    w.acme_engine.released.set()
    await w.step([command(0, "ghost", 1, "G1"), command(1, "default", 2, "D1")])
    await asyncio.wait_for(w.lanes.drained(), 2)
    ghost = [r for r in w.sent.results if r["tenant"] == "ghost"]
    assert [r["action"] for r in ghost] == ["failed"]
    assert "not in the tenants file" in ghost[0]["reason"]
    assert [(d["topic"], d["offset"]) for d in w.sent.dead] == [("commands", 0)]
    assert w.lanes.tenant_status("ghost")["state"] == "idle"  # its lane went on
    assert w.default_rows == [2]
    await w.lanes.stop_all()
