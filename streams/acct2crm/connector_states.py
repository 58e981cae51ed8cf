"""Every tenant's capture connector as Kafka Connect sees it, for ``status``.

Each tenant has its own connector (rendered from the one template); the
``connector`` key of ``status --json`` keeps meaning the default tenant's, and
``connectors`` lists every tenant's, the default tenant first. The names come
from the registry as it is now, so a tenant added while running shows up.
"""

from __future__ import annotations

from typing import Any

from acct2crm.connect.client import ConnectClient
from acct2crm.connect.config import load
from acct2crm.connect.operations import state_of
from acct2crm.errors import Acct2CrmError
from acct2crm.settings import Settings
from acct2crm.tenants import read_registry


def tenant_connector_names(settings: Settings) -> list[tuple[str, str]]:
    """(tenant, connector name) for every tenant of the registry, the default first."""
    return [
        (tenant.id, definition.name)
        for tenant in read_registry(settings)
        for definition in load(settings, tenants=[tenant])
    ]


def every_connector_state(settings: Settings) -> list[dict[str, Any]]:
    """``tenant``, ``name``, ``state``, ``tasks`` of each tenant's connector; one entry
    with state ``UNREACHABLE`` and the error when Connect or the registry cannot be read."""
    try:
        names = tenant_connector_names(settings)
        with ConnectClient(settings.connect_url) as client:
            return [{"tenant": tenant, **state_of(client, name).as_dict()}
                    for tenant, name in names]
    except Acct2CrmError as exc:
        return [{"tenant": None, "name": None, "state": "UNREACHABLE", "tasks": [],
                 "error": str(exc)}]


def connector_lines(connectors: list[dict[str, Any]]) -> list[str]:
    """``status``'s text: one line per tenant's connector."""
    lines = []
    for item in connectors:
        tasks = ", ".join(f"task {t['id']} {t['state']}" for t in item.get("tasks", []))
        who = f" {item['tenant']}" if item.get("tenant") else ""
        lines.append(f"  connector{who} {item.get('state')} {tasks}".rstrip())
    return lines
