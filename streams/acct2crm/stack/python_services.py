"""The stack's Python services: the reference CRM and the sync worker.

Both are started as ``python -m`` of this same interpreter, with the settings
of the ``up`` that started them handed down as ``ACCT2CRM_*`` variables, so a
stack started with overrides (tests) runs its children with the same ones.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path, PurePath

import httpx
from pydantic import SecretStr

from acct2crm.settings import Settings
from acct2crm.stack import safe_fs
from acct2crm.stack.paths import StackPaths
from acct2crm.stack.processes import find_by_cwd, spawn, write_pid

STOP_SIGNAL = signal.SIGTERM


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that reproduce them (secrets included)."""
    env: dict[str, str] = {}
    prefix = settings.model_config.get("env_prefix", "")
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        key = field.alias or f"{prefix}{name}".upper()
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
    argv = [sys.executable, "-m", "acct2crm.refcrm"]
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
    return find_by_cwd(paths.home / "crm", "acct2crm.refcrm")


def find_worker(settings: Settings, paths: StackPaths) -> int | None:
    return find_by_cwd(paths.home / "worker", "acct2crm.cli")


def crm_healthy(settings: Settings, paths: StackPaths) -> bool:
    return _http_ok(f"{settings.crm_url}/healthz")


def start_worker(settings: Settings, paths: StackPaths) -> int:
    return _start(settings, paths, "worker", [sys.executable, "-m", "acct2crm.cli", "worker"])


def worker_healthy(settings: Settings, paths: StackPaths) -> bool:
    return _http_ok(settings.status_url)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
