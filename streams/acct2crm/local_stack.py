"""The seam between the product and a local stack (the development workbench).

The product never imports the workbench. A workbench installed beside it
(``pip install -e stack``) announces itself under the entry-point group
``acct2crm.local_stack``: an object that adds its commands to the CLI (``up``,
``down``, ``demo``, ``bench``), knows the processes it started, and can stop
and start the worker it runs (``replay`` rewinds a stopped worker). Without
one, as in the worker's container image, the CLI has the product's commands
only and ``status`` probes each endpoint instead of reading pids.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

import typer

from acct2crm.settings import Settings

ENTRY_POINT_GROUP = "acct2crm.local_stack"


class LocalStack(Protocol):
    """What a workbench offers the product."""

    def register_commands(self, app: typer.Typer) -> None:
        """Add the workbench's commands to the ``acct2crm`` CLI."""

    def service_states(self, settings: Settings) -> dict[str, dict[str, Any]]:
        """``{name: {state, pid}}`` for postgres, kafka, connect, crm and worker."""

    def worker_supervision(self, settings: Settings) -> dict[str, Any] | None:
        """Restarts of the stack's worker so far and its last exit (None: not supervised)."""

    def stop_worker(self, settings: Settings) -> bool:
        """Stop the worker this stack runs; whether one was running."""

    def start_worker(self, settings: Settings) -> None:
        """Start the worker again (after ``stop_worker``)."""


def find_local_stack() -> LocalStack | None:
    """The installed workbench, if any (the first one registered)."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found: LocalStack = entry.load()
        return found
    return None
