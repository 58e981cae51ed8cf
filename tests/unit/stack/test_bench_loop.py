"""The bench's side-by-side event loops: the worker's reported loop, and the restart variable."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from acct2crm import metrics
from acct2crm.settings import Settings
from devstack.bench_loop import LOOP_VARIABLE, next_start_on, worker_loop


def test_next_start_on_sets_the_variable_and_puts_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(LOOP_VARIABLE, raising=False)
    with next_start_on("asyncio"):
        assert os.environ[LOOP_VARIABLE] == "asyncio"
    assert LOOP_VARIABLE not in os.environ
    monkeypatch.setenv(LOOP_VARIABLE, "uvloop")
    with pytest.raises(RuntimeError), next_start_on("asyncio"):
        raise RuntimeError("a failed measurement")
    assert os.environ[LOOP_VARIABLE] == "uvloop"


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
