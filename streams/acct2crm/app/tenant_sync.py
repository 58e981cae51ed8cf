"""What the status page says of each tenant: its sink's wait and its lane's queue.

A tenant's sink knows whether its CRM answers (its wait state); its lane
knows how many of its commands wait and since when, and whether it is held
at the pause gate or retrying an unexpected failure. ``status`` shows both
under ``tenants.<ID>``, so a tenant that waits is seen waiting, alone.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from acct2crm.app.command_lanes import UNREADABLE
from acct2crm.app.lanes import TenantLanes
from acct2crm.app.tenant_sinks import TenantSinks, tenant_states

WAITING = ("paused", "waiting_for_crm", "retrying")  # lane states that mean "held"


def tenant_sync(
    sinks: TenantSinks | None, lanes: TenantLanes | None, paused: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per tenant: ``state``, ``waiting_reason`` (and kind), commands held, oldest age."""
    states = tenant_states(sinks, paused)
    lane_view = lanes.status() if lanes is not None else {}
    for tenant in sorted(set(states) | set(lane_view) - {UNREADABLE}):
        entry = states.setdefault(tenant, {
            "state": "paused" if tenant in paused else "running",
            "waiting_reason": None, "waiting_kind": None})
        lane = lanes.tenant_status(tenant) if lanes is not None else {}
        entry["queued"] = int(lane.get("queued") or 0) + int(lane.get("spilled") or 0)
        entry["oldest_waiting_s"] = lane.get("oldest_waiting_s")
        if lane.get("state") in WAITING:
            entry["state"] = lane["state"]
            entry["waiting_reason"] = lane.get("waiting_reason") or entry["waiting_reason"]
    return states
