"""Kafka Connect's word on every tenant's capture connector, for the cockpit.

One connector per tenant (rendered from the one template): the cockpit shows
them all, the default tenant's first. Connect is asked at most every few
seconds; the names are read from the registry at each ask, so a tenant added
while the worker runs is watched from then on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

from acct2crm import metrics
from acct2crm.app.status_html import ConnectorView
from acct2crm.connector_states import tenant_connector_names
from acct2crm.errors import Acct2CrmError
from acct2crm.settings import Settings

log = logging.getLogger(__name__)
CONNECTOR_TTL_S = 3.0
Names = Callable[[], list[tuple[str, str]]]


class ConnectorWatch:
    """Every tenant's connector state, refreshed at most every ``CONNECTOR_TTL_S``."""

    def __init__(self, settings: Settings, names: Names | None = None) -> None:
        self._url = settings.connect_url
        self._names = names or (lambda: tenant_connector_names(settings))
        self._seen: list[ConnectorView] = []
        self._at = 0.0
        self._warned = False

    def _current_names(self) -> list[tuple[str, str]]:
        try:
            found = self._names()
        except Acct2CrmError as exc:
            if not self._warned:
                log.warning("no connector definition to watch: %s", exc)
                self._warned = True
            return []
        self._warned = False
        return found

    async def views(self) -> list[ConnectorView]:
        """Each tenant's connector, the default tenant's first."""
        if time.monotonic() - self._at < CONNECTOR_TTL_S and self._seen:
            return self._seen
        self._at = time.monotonic()
        names = self._current_names()
        if not names:
            self._seen = [ConnectorView(None, "UNKNOWN")]
            return self._seen
        async with httpx.AsyncClient(timeout=2.0) as http:
            self._seen = [await self._ask(http, tenant, name) for tenant, name in names]
        for view in self._seen:
            if view.name is not None:
                metrics.set_connector(view.name, {"connector": view.state, **dict(view.tasks)})
        return self._seen

    async def view(self) -> ConnectorView:
        """The default tenant's connector (the first)."""
        return (await self.views())[0]

    async def _ask(self, http: httpx.AsyncClient, tenant: str, name: str) -> ConnectorView:
        try:
            answer = await http.get(f"{self._url}/connectors/{name}/status")
            if answer.status_code == 404:
                return ConnectorView(name, "MISSING", tenant=tenant)
            body = answer.json()
            tasks = tuple((str(t.get("id")), str(t.get("state"))) for t in body.get("tasks", []))
            state = str(body.get("connector", {}).get("state", "UNKNOWN"))
            return ConnectorView(name, state, tasks, tenant=tenant)
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return ConnectorView(name, "UNREACHABLE", error=type(exc).__name__, tenant=tenant)
