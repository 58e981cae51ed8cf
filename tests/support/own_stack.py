"""A small stack of a test's own, beside the session's: its own state folder and ports.

Ports are the defaults + the session's offset + 10 x (``slot`` + 1), slot 0
to 8: sessions on one machine use offsets 100 apart, so every session's own
small stacks stay clear of each other and of every session stack. The stack
takes the first slot whose ports can all be bound now (these ports lie in
Linux's ephemeral range: any client connection may hold one for a while).
Cleaning up stops what the stack's state folder names and removes
PostgreSQL's private folder, if ``up`` made one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from acct2crm.settings import Settings
from devstack import lifecycle
from devstack.paths import StackPaths
from devstack.processes import is_alive, port_open, read_pid

PORT_FIELDS = (
    "pg_port", "kafka_port", "kafka_controller_port", "connect_port", "crm_port", "worker_port",
    "connect_metrics_port",
)


def session_offset() -> int:
    return int(os.environ.get("ACCT2CRM_TEST_PORT_OFFSET", "100"))


SLOTS = 9


def ports_for(slot: int) -> dict[str, int]:
    offset = session_offset() + 10 * (slot + 1)
    return {name: int(Settings.model_fields[name].default) + offset for name in PORT_FIELDS}


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_slot() -> int:
    for slot in range(SLOTS):
        if all(_bindable(port) for port in ports_for(slot).values()):
            return slot
    raise AssertionError("no free port slot for a stack of the test's own")


@dataclass
class OwnStack:
    """Settings and environment of a stack in ``home`` on the ports of a free slot."""

    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    slot: int = field(default_factory=free_slot)

    @property
    def ports(self) -> dict[str, int]:
        return ports_for(self.slot)

    @property
    def settings(self) -> Settings:
        return Settings(home=self.home, **self.ports)

    @property
    def paths(self) -> StackPaths:
        return StackPaths.of(self.settings)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ACCT2CRM_HOME"] = str(self.home)
        env.update({f"ACCT2CRM_{name.upper()}": str(port) for name, port in self.ports.items()})
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``acct2crm ARGS`` as an operator runs it; the finished process (not checked)."""
        return subprocess.run(
            [sys.executable, "-m", "acct2crm.cli", *args], capture_output=True, text=True,
            env=self.env, cwd=cwd, timeout=timeout, check=False,
        )

    def recorded_pids(self) -> dict[str, int]:
        run = self.home / "run"
        found = {path.stem: read_pid(path) for path in run.glob("*.pid")}
        return {name: pid for name, pid in found.items() if pid is not None}

    def open_ports(self) -> list[int]:
        return [port for port in self.ports.values() if port_open(port)]

    def clean_up(self) -> None:
        """Stop whatever runs in this state folder; remove it and its private cluster folder."""
        lifecycle.down(self.settings, echo=lambda _line: None)
        location = self.home / "postgres.location"
        if location.exists():
            shutil.rmtree(location.read_text().strip(), ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)


def all_gone(pids: dict[str, int]) -> list[str]:
    """Names whose process still runs."""
    return [name for name, pid in pids.items() if is_alive(pid)]
