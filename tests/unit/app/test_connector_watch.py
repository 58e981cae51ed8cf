"""The cockpit watches every tenant's connector (one per tenant), not the default's only."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from acct2crm.app.connector_watch import ConnectorWatch
from acct2crm.app.status_html import ConnectorView, TenantView, render_status
from acct2crm.settings import Settings


def test_views_ask_connect_for_each_tenants_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if "/c-tb/" in request.url.path:
            return httpx.Response(404)
        state = "FAILED" if "/c-ta/" in request.url.path else "RUNNING"
        return httpx.Response(200, json={"connector": {"state": state},
                                         "tasks": [{"id": 0, "state": state}]})

    real = httpx.AsyncClient

    def client(**kwargs: Any) -> httpx.AsyncClient:
        return real(transport=httpx.MockTransport(answer), **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", client)  # the one the watch opens
    names = [("default", "c-default"), ("ta", "c-ta"), ("tb", "c-tb")]
    watch = ConnectorWatch(Settings(), names=lambda: names)
    views = asyncio.run(watch.views())
    assert asked == ["/connectors/c-default/status", "/connectors/c-ta/status",
                     "/connectors/c-tb/status"]
    assert [(v.tenant, v.name, v.state) for v in views] == [
        ("default", "c-default", "RUNNING"), ("ta", "c-ta", "FAILED"), ("tb", "c-tb", "MISSING")]
    assert asyncio.run(watch.view()) == views[0]  # the default tenant's, as before


def test_status_page_shows_every_tenants_connector() -> None:
    page = render_status(
        [TenantView("default", "running")],
        [ConnectorView("c-default", "RUNNING", (("0", "RUNNING"),), tenant="default"),
         ConnectorView("c-ta", "FAILED", (("0", "FAILED"),), tenant="ta")],
    )
    assert page.count('<section class="connector"') == 2
    assert 'data-state="FAILED" data-tenant="ta"><h2>Connector c-ta</h2>' in page
    assert "Connector c-default</h2>" in page
