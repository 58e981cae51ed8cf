"""The worker's event loop follows the ``event_loop`` setting, and says so."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from acct2crm import metrics
from acct2crm.app.event_loop import install_event_loop
from acct2crm.errors import ConfigError
from acct2crm.settings import Settings


@pytest.fixture(autouse=True)
def standard_policy_after() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)  # the other tests run on asyncio's own loop


def _loop_module() -> str:
    loop = asyncio.new_event_loop()
    try:
        return type(loop).__module__.split(".")[0]
    finally:
        loop.close()


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    assert install_event_loop("auto") == "uvloop"
    assert _loop_module() == "uvloop"


def test_asyncio_keeps_the_standard_loop() -> None:
    install_event_loop("uvloop")
    assert install_event_loop("asyncio") == "asyncio"
    assert _loop_module() == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert install_event_loop("auto") == "asyncio"
    assert _loop_module() == "asyncio"
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        install_event_loop("uvloop")


def test_the_setting_takes_only_the_three_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCT2CRM_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"
    monkeypatch.setenv("ACCT2CRM_EVENT_LOOP", "trio")
    with pytest.raises(ConfigError, match="event_loop"):
        Settings()


def test_the_loop_is_on_the_metrics_page() -> None:
    metrics.worker_info(event_loop="uvloop")
    page = metrics.exposition().decode()
    assert 'acct2crm_worker_info{event_loop="uvloop"} 1.0' in page
