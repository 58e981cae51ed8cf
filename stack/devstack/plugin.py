"""The workbench as the product sees it (entry point ``acct2crm.local_stack``).

``acct2crm`` looks this object up at start: it adds ``up``, ``down``, ``demo``
and ``bench`` to the CLI, reports the processes this stack started (with pids)
for ``status``, and stops and starts the stack's worker around ``replay``.
"""

from __future__ import annotations

from typing import Any

import typer

from acct2crm.settings import Settings
from devstack import commands, python_services
from devstack.lifecycle import services
from devstack.paths import StackPaths
from devstack.processes import read_pid, stop
from devstack.supervisor import read_state


class DevStack:
    """The native local stack under ``settings.home``."""

    def __init__(self) -> None:
        self._extra = 0  # extra workers stop_worker stopped, for start_worker

    def register_commands(self, app: typer.Typer) -> None:
        commands.register(app)

    def service_states(self, settings: Settings) -> dict[str, dict[str, Any]]:
        """``running`` (answers its health check), ``unhealthy`` (our process, not answering)
        or ``stopped``; ``pid`` only for a process this stack started and that still runs."""
        paths = StackPaths.of(settings)
        states: dict[str, dict[str, Any]] = {}
        for name, service in services(settings).items():
            pid = None if service.external else read_pid(paths.pid_file(name))
            if service.healthy(settings, paths):
                state = "running"
            elif pid is not None:
                state = "unhealthy"
            else:
                state = "stopped"
            states[name] = {"state": state, "pid": pid}
        return states

    def worker_supervision(self, settings: Settings) -> dict[str, Any] | None:
        paths = StackPaths.of(settings)
        if read_pid(paths.pid_file("worker")) is None:
            return None
        return read_state(python_services.supervisor_state_file(paths))

    def stop_worker(self, settings: Settings) -> bool:
        """Every worker of the stack (``up --workers N``): a rewind needs the group empty.
        How many extra ones ran is kept for ``start_worker``."""
        from devstack import workers  # noqa: PLC0415 (workers imports this package's services)

        self._extra = len(workers.stop_extra(settings, echo=lambda _line: None))
        pid = read_pid(StackPaths.of(settings).pid_file("worker"))
        if pid is None:
            return self._extra > 0
        stop(pid)
        return True

    def start_worker(self, settings: Settings) -> None:
        from devstack import workers  # noqa: PLC0415

        python_services.start_worker(settings, StackPaths.of(settings))
        for index in range(2, 2 + self._extra):
            workers.start_extra(settings, index)
        self._extra = 0

    def worker_states(self, settings: Settings) -> list[dict[str, Any]]:
        """Every worker process (``up --workers N``): state, pid, status_url."""
        from devstack import workers  # noqa: PLC0415 (workers imports this package's services)

        return workers.states(settings)


LOCAL_STACK = DevStack()
