"""The worker's pages for people and Prometheus: ``/`` (status), ``/history/<code>``, ``/metrics``.

Registered with ``app.page`` beside the JSON ``/status``; Faust's own pages
stay off (faust_app.py). States that are not events (lag, waiting for the
CRM, the connector) are read when a page is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import faust
from faust.types import TP

from acct2crm import metrics
from acct2crm.app.activity import ACTIVITY, Activity
from acct2crm.app.connector_watch import ConnectorWatch
from acct2crm.app.ledger import ledger_key
from acct2crm.app.status_html import TenantView, render_history, render_status
from acct2crm.app.topology import Topology
from acct2crm.app.wiring import Wiring
from acct2crm.settings import Settings
from acct2crm.sink.pacing import WaitState
from acct2crm.topic_partitions import tenant_partition

log = logging.getLogger(__name__)


def tenant_lag(
    settings: Settings, topology: Topology, partition: int = 0, tenant: str | None = None
) -> dict[str, int | None]:
    """Per topic partition: the broker's next offset less the next one the ledger expects.

    A tenant's changes and commands are in one partition (``PartitionRouting`` on its
    database), shared with any tenant that hashes to the same one."""
    lag: dict[str, int | None] = {}
    for topic in (settings.change_topic, settings.commands_topic):
        where = f"{topic}[{partition}]"
        try:
            high = topology.app.consumer.highwater(TP(topic, partition))
            done = topology.topic_offsets.get(ledger_key(topic, partition))
        except Exception:  # not assigned yet, consumer not started
            lag[where] = None
            continue
        if high is None:
            lag[where] = None
            continue
        nxt = int(done["offset"]) + 1 if isinstance(done, dict) else 0
        lag[where] = max(0, int(high) - nxt)
        metrics.set_lag(tenant or settings.tenant, topic, partition, lag[where] or 0)
    return lag


def holds(settings: Settings, topology: Topology, partition: int | None) -> bool:
    """Whether this worker holds the tenant's partition now (True when it cannot tell:
    the consumer not started, or a tenant without a known partition)."""
    if partition is None:
        return True
    try:
        assigned = topology.app.consumer.assignment()
    except Exception:  # not started yet: nothing to say otherwise
        return True
    return TP(settings.change_topic, partition) in assigned


def paused_tenants(wiring: Wiring) -> Collection[str]:
    """The tenants paused now (``acct2crm pause``), from the pause file the gate reads."""
    return wiring.pause.paused()


def known_tenants(settings: Settings, wiring: Wiring, activity: Activity) -> list[str]:
    """Every tenant of the registry, and any other this worker saw results of."""
    listed = [t.id for t in wiring.tenants.current()] if wiring.tenants is not None else []
    return sorted({settings.tenant, *listed, *activity.tenants()})


def _wait_state(settings: Settings, wiring: Wiring, tenant: str) -> WaitState | None:
    sink = wiring.sinks.sinks.get(tenant) if wiring.sinks is not None else None
    if sink is not None:
        return sink.wait_state
    return wiring.wait_state if tenant == settings.tenant else None


def _partition(settings: Settings, wiring: Wiring, tenant: str) -> int | None:
    found = wiring.tenants.current().get(tenant) if wiring.tenants is not None else None
    if found is None:
        return 0 if tenant == settings.tenant else None
    return tenant_partition(settings, found.database)


def tenant_views(
    settings: Settings, topology: Topology, wiring: Wiring, activity: Activity = ACTIVITY
) -> list[TenantView]:
    """One view per tenant: every tenant of the registry, and any seen in results."""
    views = []
    paused = paused_tenants(wiring)
    for tenant in known_tenants(settings, wiring, activity):
        seen = activity.tenant(tenant)
        waiting = _wait_state(settings, wiring, tenant)
        reason = waiting.reason if waiting is not None else None
        if waiting is not None:
            metrics.set_waiting(tenant, waiting.kind)
        partition = _partition(settings, wiring, tenant)
        held = holds(settings, topology, partition)
        views.append(
            TenantView(
                tenant=tenant,
                state="paused" if tenant in paused else (
                    "elsewhere" if not held else "waiting_for_crm" if reason else "running"),
                waiting_reason=reason,
                waiting_since=waiting.since if waiting is not None else None,
                lag={} if partition is None or not held
                else tenant_lag(settings, topology, partition, tenant),
                counts_today=dict(seen.counts_today),
                counting_since=seen.counting_since,
                failures=list(seen.failures),
                lane=wiring.lanes.tenant_status(tenant) if wiring.lanes is not None else None,
            )
        )
    return views


def register_cockpit(settings: Settings, topology: Topology, wiring: Wiring) -> None:
    app: faust.App = topology.app
    connector = ConnectorWatch(settings)

    @app.page("/")
    async def status_html(web: Any, request: Any) -> Any:
        views = tenant_views(settings, topology, wiring)
        return web.html(render_status(views, await connector.views()))

    @app.page("/history/{code}")
    async def history_html(web: Any, request: Any, code: str) -> Any:
        wanted = request.query.get("tenant")
        known = known_tenants(settings, wiring, ACTIVITY)
        found = {t: ACTIVITY.tenant(t).history(code) for t in known if wanted in (None, t)}
        return web.html(render_history(code, found))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        tenant_views(settings, topology, wiring)  # lag and waiting, as of now
        await connector.views()
        return web.text(metrics.exposition().decode(), content_type=metrics.CONTENT_TYPE)
