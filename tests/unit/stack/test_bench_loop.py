"""The bench's side-by-side event loops: the worker's reported loop, and the restart variable."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from acct2crm import metrics
from acct2crm.settings import Settings
from devstack.bench_loop import on_loop, worker_loop
from devstack.python_services import settings_env


def test_a_worker_started_with_on_loop_gets_that_loop() -> None:
    settings = Settings(worker_port=51234)
    standard = on_loop(settings, "asyncio")
    assert settings_env(standard)["ACCT2CRM_EVENT_LOOP"] == "asyncio"  # what the stack passes
    # the bench's own: what the child reads by itself, so nothing to hand down
    assert "ACCT2CRM_EVENT_LOOP" not in settings_env(settings)
    assert standard.worker_port == 51234


def test_worker_loop_reads_what_the_worker_exposes(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics.worker_info(event_loop="asyncio")
    page = metrics.exposition().decode()
    asked: list[str] = []

    def get(url: str, **_: Any) -> httpx.Response:
        asked.append(url)
        return httpx.Response(200, text=page)

    monkeypatch.setattr(httpx, "get", get)
    settings = Settings(worker_port=51234)
    assert worker_loop(settings) == "asyncio"
    assert asked == ["http://127.0.0.1:51234/metrics"]


def test_worker_loop_is_none_without_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(url: str, **_: Any) -> httpx.Response:
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(httpx, "get", refused)
    assert worker_loop(Settings(worker_port=51234)) is None
