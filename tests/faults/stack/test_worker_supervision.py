"""A worker that dies on its own (not stopped by `down`) is started again, and status says so."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from acct2crm.settings import Settings
from acct2crm.status_report import as_text
from devstack.paths import StackPaths
from devstack.processes import read_pid
from devstack.python_services import supervisor_state_file
from devstack.supervisor import read_state
from tests.conftest import StackHandle
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration


def started_at(settings: Settings) -> float | None:
    try:
        return float(httpx.get(settings.status_url, timeout=2).json()["started_at"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def test_a_killed_worker_is_restarted_and_status_shows_it(
    stack: StackHandle, stack_settings: Settings
) -> None:
    paths = StackPaths.of(stack_settings)
    before = started_at(stack_settings)
    assert before is not None
    supervised = read_state(supervisor_state_file(paths)) or {}
    # the worker process itself: under a supervisor, its child; without one, the recorded pid
    worker = supervised.get("child_pid") or read_pid(paths.pid_file("worker"))
    assert worker is not None
    restarts = int(supervised.get("restarts") or 0)
    try:
        os.kill(worker, signal.SIGKILL)  # a crash at 3 a.m.: nobody runs `up`
        deadline = time.monotonic() + 120
        while started_at(stack_settings) in (None, before):
            assert time.monotonic() < deadline, "the killed worker was never started again"
            time.sleep(1)
        report = stack.status()
        state = report["sync"]["supervisor"]
        assert state["restarts"] == restarts + 1
        assert state["last_exit_code"] == -signal.SIGKILL
        assert "restarted" in as_text(report)
        pipe = Pipeline.start(stack_settings)  # and it syncs again
        row = pipe.insert(unique_tag("S"))
        assert pipe.results([row], 1, timeout_s=120)[0]["action"] == "created"
        pipe.close()
    finally:
        stack.up()
