"""The worker's status page: what it is doing, for `acct2crm status` and people."""

from __future__ import annotations

from typing import Any

import faust

from acct2crm.app.tenant_sync import tenant_sync
from acct2crm.app.wiring import Wiring


def status_body(wiring: Wiring) -> dict[str, Any]:
    wait_state = wiring.wait_state
    paused = wiring.pause.paused()
    return {
        "state": "paused" if wiring.outputs.tenant in wiring.pause.holding | set(paused)
        else "waiting_for_crm" if wait_state.reason else "running",
        "paused": paused,  # tenant -> since (epoch s); its changes wait in Kafka
        "waiting_reason": wait_state.reason,
        "waiting_kind": wait_state.kind,  # "configuration": the operator must act
        "waiting_since": wait_state.since,
        "crm_retries": wait_state.retries,
        "scope": wiring.scope.current().describe(),
        "scope_error": wiring.scope.error,
        "mapping": wiring.mapping.summary(),
        "mapping_error": wiring.mapping.error,
        "counts_since_start": dict(wiring.outputs.counts),
        "started_at": wiring.started,
        "seeded": wiring.cache.seeded,
        "seeding": wiring.seeder.status() if wiring.seeder else None,
        # records the broker has not acknowledged yet; their offsets wait
        "kafka_waiting": [d.state.reason for d in wiring.deliveries if d.state.reason],
        # a gap in a topic not read back yet (retried), and offsets found deleted
        "reading_back": wiring.ledger.state.reason,
        "lost_offsets": [lost.describe() for lost in wiring.ledger.lost],
        # offsets past the ledger the consumer never handed over, read back when idle
        "catching_up": wiring.catch_up.status() if wiring.catch_up else None,
        # each tenant's sink and lane: waiting (why) or running, commands held, oldest age
        "tenants": tenant_sync(wiring.sinks, wiring.lanes, paused),
        "tenants_error": wiring.tenants.error if wiring.tenants is not None else None,
        # per tenant: commands waiting in its lane, why, and the oldest one's age
        "lanes": wiring.lanes.status() if wiring.lanes else {},
    }


def register_status_page(app: faust.App, wiring: Wiring) -> None:
    @app.page("/status")
    async def status_page(web: Any, request: Any) -> Any:
        return web.json(status_body(wiring))
