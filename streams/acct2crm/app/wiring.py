"""What the agents work with: the CRM client, the sink engine, outputs, the ledger."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from acct2crm.app.catch_up import CatchUp
from acct2crm.app.co_partition import co_partitioned
from acct2crm.app.command_order import CommandOrder
from acct2crm.app.consumer_gaps import consumer_passes
from acct2crm.app.delivery import Delivery
from acct2crm.app.direct_send import direct_producer
from acct2crm.app.kafka_reader import RangeReader
from acct2crm.app.lanes import TenantLanes
from acct2crm.app.ledger import LostRange, LostReport, OffsetLedger
from acct2crm.app.pipeline import ChangeRouter, CommandApplier, Outputs
from acct2crm.app.seeding_task import register_seeding
from acct2crm.app.tenant_sinks import (
    TenantScopes,
    TenantSink,
    TenantSinks,
    make_tenant_sink,
    place_tenant_keys,
    register_tenant_seeding,
    tenant_of_database,
)
from acct2crm.app.topology import Topology
from acct2crm.crm.client import CrmClient
from acct2crm.crm.instrumented import InstrumentedCrm
from acct2crm.kafka_security import aiokafka_options
from acct2crm.mapping_file import MappingWatcher
from acct2crm.pause import PauseGate, pause_path
from acct2crm.rules.change import Action
from acct2crm.scope_file import ScopeWatcher
from acct2crm.settings import Settings
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import RetryPolicy, WaitState
from acct2crm.sink.seeding import Seeder, SinkFirstPace
from acct2crm.tenants import TenantWatcher, default_tenant
from acct2crm.topic_partitions import tenant_partition

log = logging.getLogger(__name__)


@dataclass
class Wiring:
    """The worker's moving parts, built once per app."""

    outputs: Outputs  # the change agent's; the command agent's shares its counts
    deliveries: tuple[Delivery, Delivery]  # change agent's, command agent's
    wait_state: WaitState
    scope: ScopeWatcher
    mapping: MappingWatcher
    cache: CodeCache
    ledger: OffsetLedger
    router: ChangeRouter
    applier: CommandApplier
    pause: PauseGate
    started: float = field(default_factory=time.time)
    seeder: Seeder | None = None  # fills `cache` from the CRM's list beside the agents
    catch_up: CatchUp | None = None  # reads back what an idle agent was never handed
    tenants: TenantWatcher | None = None  # many tenants: the registry, and each one's sink
    sinks: TenantSinks | None = None
    lanes: TenantLanes | None = None  # the command agent's per-tenant lanes (command_lanes.py)


def _outputs(
    settings: Settings, topology: Topology, delivery: Delivery, counts: dict[str, int]
) -> Outputs:
    return Outputs(
        tenant=settings.tenant,
        send_command=delivery.sender(co_partitioned(topology.commands_topic)),
        send_result=delivery.sender(direct_producer(topology.results_topic)),
        send_dead_letter=delivery.sender(direct_producer(topology.dlq_topic)),
        counts=counts,
    )


def _lost_reporter(outputs: Outputs, delivery: Delivery) -> LostReport:
    """Offsets deleted before they were handled: a failed result naming them, delivered."""
    lock = asyncio.Lock()  # both agents' ledgers share this delivery

    async def report(gone: LostRange) -> None:
        async with lock:
            await outputs.result(
                accounting_id=None, code=None, op="?", action=Action.FAILED,
                reason=gone.describe(),
            )
            await delivery.settle()

    return report


def build_wiring(settings: Settings, topology: Topology) -> Wiring:
    deliveries = (Delivery("route_changes"), Delivery("apply_commands"))
    counts: dict[str, int] = {}
    outputs = _outputs(settings, topology, deliveries[0], counts)
    reader = RangeReader(settings.kafka_bootstrap, security=aiokafka_options(settings))
    ledger_delivery = Delivery("offset_ledger")
    ledger = OffsetLedger(
        topology.topic_offsets,
        reader.read,
        reader.earliest,
        report_lost=_lost_reporter(
            _outputs(settings, topology, ledger_delivery, counts), ledger_delivery
        ),
        passed=consumer_passes(topology.app),
    )
    wait_state = WaitState(settings.tenant)
    pause = PauseGate(pause_path(settings))
    scope = ScopeWatcher(settings.effective_scope_file)
    mapping = MappingWatcher(settings.effective_mapping_file)
    crm = InstrumentedCrm(CrmClient.connect(
        settings.crm_url,
        settings.crm_token.get_secret_value(),
        timeout_s=settings.crm_timeout_s,
        allow_insecure_http=settings.crm_allow_insecure_http,
    ), settings.tenant)
    cache = CodeCache(topology.code_to_customer, settings.tenant)
    retry = RetryPolicy(settings.crm_retry_base_s, settings.crm_retry_cap_s)
    pace = SinkFirstPace(settings.crm_rate_limit_per_s)  # one budget; changes go first
    engine = SinkEngine(
        crm,
        cache,
        topology.row_to_position,
        retry=retry,
        max_concurrency=settings.crm_max_concurrency,
        pace=pace,
        wait_state=wait_state,
        batch_size=settings.crm_batch_size,
    )
    seeder = Seeder(settings.tenant, crm, topology.code_to_customer, pace=pace, retry=retry,
                    page_size=settings.crm_seed_page_size)
    register_seeding(topology.app, seeder, settings.commands_topic,
                     tenant_partition(settings, settings.pg_database))

    tenants = TenantWatcher(settings)
    sinks = TenantSinks(
        tenants.current,
        lambda tenant: make_tenant_sink(settings, tenant, topology),
        [TenantSink(default_tenant(settings), engine, seeder, wait_state)],
    )  # no gate here: each tenant lane waits at the pause gate itself (lanes.py)
    register_tenant_seeding(topology.app, sinks, settings)
    scopes = TenantScopes(tenants.current, scope)
    place_tenant_keys(settings, topology, tenants)

    async def seeded_per_tenant() -> None:
        """Each tenant's sink starts its own seeding before its first batch."""

    return Wiring(
        outputs=outputs,
        deliveries=deliveries,
        wait_state=wait_state,
        scope=scope,
        mapping=mapping,
        cache=cache,
        ledger=ledger,
        router=ChangeRouter(scope, topology.row_to_position, outputs, mapping=mapping,
                            tenant_of=tenant_of_database(tenants), scope_of=scopes.of,
                            before_command=CommandOrder(deliveries[0]).before_send),
        applier=CommandApplier(  # the pause gate is each tenant lane's (lanes.py)
            sinks, _outputs(settings, topology, deliveries[1], counts), seeded_per_tenant
        ),
        seeder=seeder,
        pause=pause,
        tenants=tenants,
        sinks=sinks,
    )
