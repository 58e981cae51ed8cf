"""``acct2crm up --workers N``: more worker processes in the one consumer group.

Worker 1 is the stack's ``worker`` service. Workers 2..N are the same command
under their own supervisor, state folder (``<home>/worker-<i>``), pid file,
log and status port (``worker_port + i - 1``); Kafka's consumer group spreads
the partitions over all of them and moves them when one joins, leaves or dies.
Starting is idempotent (a running worker is kept); ``down`` stops them all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import httpx

from acct2crm.errors import StackError
from acct2crm.settings import Settings
from devstack import safe_fs
from devstack.paths import StackPaths
from devstack.processes import find_by_cwd, read_pid, spawn, stop, write_pid
from devstack.python_services import settings_env

MAX_WORKERS = 16
HEALTHY_TIMEOUT_S = 90.0
Echo = Callable[[str], Any]


def name(index: int) -> str:
    return "worker" if index == 1 else f"worker-{index}"


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker ``index``'s own port and table folder (its RocksDB files are its own)."""
    own = StackPaths.of(settings).home / name(index) / "data"
    return settings.model_copy(update={"worker_port": settings.worker_port + index - 1,
                                       "worker_data_dir": own})


def _running(settings: Settings, paths: StackPaths, index: int) -> int | None:
    pid = read_pid(paths.pid_file(name(index)))
    if pid is None:
        pid = find_by_cwd(paths.home / name(index), "devstack.supervisor")
        if pid is not None:
            write_pid(paths.pid_file(name(index)), pid)
    return pid


def _healthy(settings: Settings) -> bool:
    try:
        return httpx.get(settings.status_url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_extra(settings: Settings, index: int) -> int:
    """Worker ``index`` (>= 2) under its supervisor; the supervisor's pid."""
    paths = StackPaths.of(settings)
    own = worker_settings(settings, index)
    folder = PurePath(name(index))
    safe_fs.ensure_dir(paths.home, folder)
    state = paths.run_dir / f"{name(index)}-supervisor.json"
    state.unlink(missing_ok=True)
    worker = [sys.executable, "-m", "acct2crm.cli", "worker"]
    argv = [sys.executable, "-m", "devstack.supervisor", str(state), "--", *worker]
    pid = spawn(argv, log_file=paths.log_file(name(index)), extra_env=settings_env(own),
                cwd=paths.home / folder)
    write_pid(paths.pid_file(name(index)), pid)
    return pid


def ensure(settings: Settings, count: int, *, echo: Echo = print) -> list[int]:
    """Workers 2..``count`` running and answering (worker 1 is ``up``'s); their pids."""
    if not 1 <= count <= MAX_WORKERS:
        raise StackError(f"--workers {count}: allowed 1 to {MAX_WORKERS}")
    paths = StackPaths.of(settings)
    pids = []
    for index in range(2, count + 1):
        pid = _running(settings, paths, index)
        if pid is not None:
            echo(f"{name(index)}: already running (pid {pid})")
        else:
            pid = start_extra(settings, index)
            echo(f"{name(index)}: started (pid {pid})")
        pids.append(pid)
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    for index in range(2, count + 1):
        while not _healthy(worker_settings(settings, index)):
            if time.monotonic() > deadline:
                raise StackError(f"{name(index)} did not answer its status page in time; "
                                 f"see {paths.log_file(name(index))}")
            time.sleep(0.5)
    return pids


def stop_extra(settings: Settings, *, echo: Echo = print) -> list[str]:
    """Stop workers 2..MAX by pid (``down``); the names stopped."""
    paths = StackPaths.of(settings)
    stopped = []
    for index in range(MAX_WORKERS, 1, -1):
        pid = _running(settings, paths, index)
        paths.pid_file(name(index)).unlink(missing_ok=True)
        if pid is None:
            continue
        if not stop(pid, timeout_s=30.0):
            raise StackError(f"{name(index)}: pid {pid} did not stop, even after SIGKILL")
        stopped.append(name(index))
        echo(f"{name(index)}: stopped (pid {pid})")
    return stopped


def states(settings: Settings) -> list[dict[str, Any]]:
    """``status --json``'s ``workers``: worker 1, then every extra one that has a pid file
    (a page answering on a later worker's port without one is another stack's: ports of
    stacks side by side overlap); each ``state``, ``pid`` and ``status_url``."""
    paths = StackPaths.of(settings)
    found = []
    for index in range(1, MAX_WORKERS + 1):
        own = worker_settings(settings, index)
        pid = read_pid(paths.pid_file(name(index)))
        if index > 1 and pid is None:
            continue
        healthy = _healthy(own)
        state = "running" if healthy else ("unhealthy" if pid is not None else "stopped")
        found.append({"state": state, "pid": pid, "status_url": own.status_url})
    return found
