"""The stack's Python services: the reference CRM and the sync worker.

Both are started as ``python -m`` of this same interpreter. What the child
would not find by itself is handed down as ``ACCT2CRM_*`` variables: the
settings ``up`` was given in code (tests, ``--workers``), relative paths made
absolute (the child runs in its own folder) and the config file in force. The
rest the child reads from the environment and the config file itself, so an
edit of the file reaches the worker at its next start (a restart by its
supervisor, or ``down`` and ``up``) instead of being shadowed by the values of
the first ``up``.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path, PurePath

import httpx
from pydantic import SecretStr

from acct2crm.config_file import config_path, env_name
from acct2crm.errors import ConfigError
from acct2crm.settings import DERIVED_ENDPOINTS, Settings
from devstack import safe_fs
from devstack.paths import StackPaths
from devstack.processes import find_by_cwd, spawn, write_pid

STOP_SIGNAL = signal.SIGTERM


def settings_env(settings: Settings) -> dict[str, str]:
    """The variables a child needs on top of the environment to get these settings
    (secrets included): see the module's docstring."""
    try:
        own = Settings()  # what a child reads by itself: the environment, then the file
        path = config_path()
    except ConfigError:  # the file broke since: hand down every value, as it was read
        own, path = None, None
    env: dict[str, str] = {}
    if path is not None:
        env[env_name("config")] = str(path.resolve())
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        # an endpoint left to its default stays derived in the child (not "external" there)
        if value is None or (name in DERIVED_ENDPOINTS and not settings.configured(name)):
            continue
        if isinstance(value, Path) and not value.is_absolute():
            value = value.resolve()
        elif own is not None and value == getattr(own, name):
            continue
        key = env_name(name)
        if isinstance(value, SecretStr):
            env[key] = value.get_secret_value()
        elif isinstance(value, Path):
            env[key] = str(value)
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            env[key] = str(value)
    return env


def crm_command(fault_injection: bool) -> list[str]:
    argv = [sys.executable, "-m", "refcrm"]
    return [*argv, "--fault-injection"] if fault_injection else argv


def _start(settings: Settings, paths: StackPaths, name: str, argv: list[str]) -> int:
    """Run in its own state folder (``<home>/crm``, ``<home>/worker``, mode 700)."""
    safe_fs.ensure_dir(paths.home, PurePath(name))
    pid = spawn(
        argv, log_file=paths.log_file(name), extra_env=settings_env(settings),
        cwd=paths.home / name,
    )
    write_pid(paths.pid_file(name), pid)
    return pid


def start_crm(settings: Settings, paths: StackPaths, fault_injection: bool) -> int:
    return _start(settings, paths, "crm", crm_command(fault_injection))


def find_crm(settings: Settings, paths: StackPaths) -> int | None:
    return find_by_cwd(paths.home / "crm", "refcrm")


def find_worker(settings: Settings, paths: StackPaths) -> int | None:
    return find_by_cwd(paths.home / "worker", "acct2crm.cli")


def crm_healthy(settings: Settings, paths: StackPaths) -> bool:
    return _http_ok(f"{settings.crm_url}/healthz")


def supervisor_state_file(paths: StackPaths) -> Path:
    return paths.run_dir / "worker-supervisor.json"


def start_worker(settings: Settings, paths: StackPaths) -> int:
    """The worker under its supervisor (restarted if it dies); the supervisor's pid."""
    state = supervisor_state_file(paths)
    state.unlink(missing_ok=True)
    worker = [sys.executable, "-m", "acct2crm.cli", "worker"]
    return _start(settings, paths, "worker",
                  [sys.executable, "-m", "devstack.supervisor", str(state), "--", *worker])


def worker_healthy(settings: Settings, paths: StackPaths) -> bool:
    return _http_ok(settings.status_url)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
