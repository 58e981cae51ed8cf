"""One CRM client and sink engine per tenant, wrapped around ``SinkEngine`` from outside.

Each tenant has its own CRM account, so its own client (URL, token), code
cache (keys carry the tenant), wait state and seeding. A tenant's sink is
made when its first command comes, from the registry in force then (a tenant
added to the file needs no restart), and made again if its URL or token
changed. A batch of commands is split by tenant and each tenant's part runs
through its own engine, concurrently; outcomes come back in the batch's order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from acct2crm.app.pipeline import BatchApplier
from acct2crm.app.seeding_task import check_seeding
from acct2crm.app.topology import Topology
from acct2crm.crm.client import CrmClient
from acct2crm.crm.instrumented import InstrumentedCrm
from acct2crm.rules.change import Action
from acct2crm.rules.decide import SyncIntent
from acct2crm.scope_file import ScopeWatcher
from acct2crm.settings import Settings
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import Applied, SinkEngine
from acct2crm.sink.pacing import RetryPolicy, WaitState
from acct2crm.sink.seeding import Seeder, SinkFirstPace
from acct2crm.tenants import Tenant, TenantRegistry, TenantWatcher
from acct2crm.topic_partitions import tenant_partition

log = logging.getLogger(__name__)

Gate = Callable[[str], Awaitable[None]]  # returns once the tenant is not paused (pause.py)


@dataclass
class TenantSink:
    """What applies one tenant's commands: its engine, its seeder, its wait state."""

    tenant: Tenant
    engine: BatchApplier
    seeder: Seeder
    wait_state: WaitState


def make_tenant_sink(settings: Settings, tenant: Tenant, topology: Topology) -> TenantSink:
    """A tenant's CRM client (instrumented: metrics carry the tenant), code cache, engine
    and seeder, with the worker's sink settings, as the default tenant's are made."""
    crm = InstrumentedCrm(CrmClient.connect(
        tenant.crm_url,
        tenant.crm_token.get_secret_value(),
        timeout_s=settings.crm_timeout_s,
        allow_insecure_http=settings.crm_allow_insecure_http,
    ), tenant.id)
    wait_state = WaitState(tenant.id)
    cache = CodeCache(topology.code_to_customer, tenant.id)
    retry = RetryPolicy(settings.crm_retry_base_s, settings.crm_retry_cap_s)
    pace = SinkFirstPace(settings.crm_rate_limit_per_s)  # one budget per CRM account
    engine = SinkEngine(
        crm, cache, topology.row_to_position, retry=retry,
        max_concurrency=settings.crm_max_concurrency, pace=pace, wait_state=wait_state,
        batch_size=settings.crm_batch_size,
    )
    seeder = Seeder(tenant.id, crm, topology.code_to_customer, pace=pace, retry=retry,
                    page_size=settings.crm_seed_page_size)
    return TenantSink(tenant=tenant, engine=engine, seeder=seeder, wait_state=wait_state)


class TenantSinks:
    """The sinks of every tenant seen so far, behind ``apply_batch`` like one engine.

    ``apply_tenant`` applies one tenant's commands through that tenant's sink
    only (its pause, its seeding, its CRM account): what a per-tenant lane calls.
    """

    def __init__(
        self,
        registry: Callable[[], TenantRegistry],
        make: Callable[[Tenant], TenantSink],
        ready: Sequence[TenantSink] = (),
        gate: Gate | None = None,
    ) -> None:
        self._registry = registry
        self._make = make
        self._gate = gate
        self.sinks: dict[str, TenantSink] = {sink.tenant.id: sink for sink in ready}

    def sink(self, tenant_id: str) -> TenantSink | None:
        tenant = self._registry().get(tenant_id)
        if tenant is None:
            return None
        known = self.sinks.get(tenant_id)
        if known is None or known.tenant != tenant:
            known = self._make(tenant)
            self.sinks[tenant_id] = known
            log.info("tenant %s: sink ready for %s", tenant_id, tenant.crm_url)
        return known

    async def apply_batch(self, intents: Sequence[SyncIntent]) -> list[Applied]:
        """Each tenant's part through its own sink, concurrently; outcomes in batch order."""
        groups: dict[str, list[int]] = {}
        for index, intent in enumerate(intents):
            groups.setdefault(intent.tenant, []).append(index)
        results: dict[int, Applied] = {}

        async def run(tenant_id: str, indexes: list[int]) -> None:
            part = [intents[i] for i in indexes]
            outcomes = await self.apply_tenant(tenant_id, part)
            for index, outcome in zip(indexes, outcomes, strict=True):
                results[index] = outcome

        await asyncio.gather(*(run(t, ix) for t, ix in groups.items()))
        return [results[i] for i in range(len(intents))]

    async def apply_tenant(self, tenant_id: str, part: Sequence[SyncIntent]) -> list[Applied]:
        """One tenant's commands, in order; never raises (a failure is theirs alone)."""
        sink = self.sink(tenant_id)
        if sink is None:
            reason = f"tenant {tenant_id!r} is not in the tenants file; kept as a dead letter"
            return [Applied(i, Action.FAILED, reason, error="ConfigError") for i in part]
        try:
            if self._gate is not None:
                await self._gate(tenant_id)  # a paused tenant's commands wait, in order
            sink.seeder.start()  # never waits: until seeded, the sink asks the CRM by code
            return await sink.engine.apply_batch(part)
        except Exception as exc:  # one tenant's surprise is its commands' failure, not others'
            log.exception("tenant %s: unexpected error applying %d commands", tenant_id, len(part))
            return [
                Applied(i, Action.FAILED, f"internal error: {exc}", error=type(exc).__name__)
                for i in part
            ]


def place_tenant_keys(settings: Settings, topology: Topology, tenants: TenantWatcher) -> None:
    """Tell the tenant-keyed tables (when partitioned) where each tenant's keys belong."""

    def partition(tenant_id: str) -> int | None:
        tenant = tenants.current().get(tenant_id)
        return None if tenant is None else tenant_partition(settings, tenant.database)

    for table in (topology.code_to_customer, topology.row_to_position):
        placing = getattr(table, "acct2crm_partitions", None)
        if placing is not None:
            placing.tenant_partition = partition


def register_tenant_seeding(app: faust.App, sinks: TenantSinks, settings: Settings) -> None:
    """Seeding of every tenant but the default one (seeding_task.py runs its own) while this
    worker holds the tenant's commands partition."""

    @app.timer(interval=1.0, name="seeding-tenants")  # type: ignore[untyped-decorator]
    async def keep_tenants_seeding() -> None:
        for sink in list(sinks.sinks.values()):
            if sink.tenant.is_default:
                continue
            partition = tenant_partition(settings, sink.tenant.database)
            await check_seeding(app, sink.seeder, settings.commands_topic, partition)


class TenantScopes:
    """Each tenant's scope file, watched; the default tenant's is the worker's own."""

    def __init__(self, registry: Callable[[], TenantRegistry], default: ScopeWatcher) -> None:
        self._registry = registry
        self._default = default
        self._watchers: dict[Path, ScopeWatcher] = {default.path: default}

    def of(self, tenant_id: str) -> ScopeWatcher:
        tenant = self._registry().get(tenant_id)
        if tenant is None:
            return self._default
        watcher = self._watchers.get(tenant.scope_file)
        if watcher is None:
            watcher = self._watchers[tenant.scope_file] = ScopeWatcher(tenant.scope_file)
        return watcher


def tenant_of_database(watcher: TenantWatcher) -> Callable[[str], str | None]:
    def find(database: str) -> str | None:
        tenant = watcher.current().by_database(database)
        return tenant.id if tenant is not None else None

    return find


def tenant_states(
    sinks: TenantSinks | None, paused: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """For the status page: each tenant this worker has a sink for, paused, waiting or
    running."""
    if sinks is None:
        return {}
    return {
        tenant_id: {
            "state": "paused" if tenant_id in paused
            else "waiting_for_crm" if sink.wait_state.reason else "running",
            "waiting_reason": sink.wait_state.reason,
            "waiting_kind": sink.wait_state.kind,
        }
        for tenant_id, sink in sinks.sinks.items()
    }
