"""``status --json``'s ``workers``: worker 1 and the extra workers of this stack only; a
status page answering on a later worker's port without this stack's pid file is another
stack's (their ports overlap), not a worker of ours."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from acct2crm.settings import Settings
from devstack import workers
from devstack.paths import StackPaths
from devstack.processes import write_pid


def test_only_workers_with_a_pid_file_of_this_stack_are_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path)
    paths = StackPaths.of(settings)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    write_pid(paths.pid_file("worker"), os.getpid())  # live pids: read_pid checks
    write_pid(paths.pid_file("worker-2"), os.getppid())
    answering = {settings.worker_port, settings.worker_port + 1, settings.worker_port + 10}
    monkeypatch.setattr(workers, "_healthy", lambda own: own.worker_port in answering)
    found = workers.states(settings)
    assert [(w["state"], w["pid"]) for w in found] == [
        ("running", os.getpid()), ("running", os.getppid())]
