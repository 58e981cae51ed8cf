"""``up --workers N``: N worker processes in the one consumer group, shown by ``status``;
starting them again changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from acct2crm.settings import Settings
from devstack.processes import is_alive

pytestmark = pytest.mark.integration


def cli(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 0, f"acct2crm {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def two_workers(stack_settings: Settings) -> Iterator[None]:
    yield
    from devstack import workers

    workers.stop_extra(stack_settings, echo=lambda _line: None)


def test_up_workers_twice_is_idempotent_and_status_shows_them(
    stack_settings: Settings, two_workers: None
) -> None:
    cli("up", "--workers", "2", "--crm-fault-injection")
    first = json.loads(cli("status", "--json"))
    again = cli("up", "--workers", "2", "--crm-fault-injection")
    assert "worker-2: already running" in again
    second = json.loads(cli("status", "--json"))
    assert len(first["workers"]) == 2
    assert first["workers"] == second["workers"]
    assert [w["state"] for w in second["workers"]] == ["running", "running"]
    pids = [w["pid"] for w in second["workers"]]
    assert len(set(pids)) == 2 and all(pid is not None and is_alive(pid) for pid in pids)
    assert second["services"]["worker"]["pid"] == pids[0]
    assert "default" in second["tenants"]
    default = second["tenants"]["default"]
    assert set(default) == {"lag", "counts", "sync"}
    assert set(default["sync"]) == {"state", "waiting_reason"}
    assert isinstance(default["lag"], int)
