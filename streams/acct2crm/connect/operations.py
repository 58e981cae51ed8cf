"""``acct2crm connectors apply|status|restart``: make Connect run what connectors/ says.

``apply`` writes a config only when it differs from what Connect holds, so
running it again restarts nothing; then it waits for the connector and every
task to be RUNNING and reports a FAILED task with its trace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from acct2crm.connect.client import ConnectClient
from acct2crm.connect.config import ConnectorDefinition, load
from acct2crm.connect.secrets import write_connect_secrets
from acct2crm.errors import ConnectError
from acct2crm.settings import Settings

RUNNING_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ConnectorState:
    """What Connect says of one connector (``state`` is ``MISSING`` when unknown to it)."""

    name: str
    state: str
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return (
            self.state == "RUNNING"
            and bool(self.tasks)
            and all(task.get("state") == "RUNNING" for task in self.tasks)
        )

    def as_dict(self) -> dict[str, Any]:
        tasks = [{"id": task.get("id"), "state": task.get("state")} for task in self.tasks]
        return {"name": self.name, "state": self.state, "tasks": tasks}


@dataclass(frozen=True)
class ApplyResult:
    name: str
    change: str  # created | updated | unchanged
    state: ConnectorState


def state_of(client: ConnectClient, name: str) -> ConnectorState:
    body = client.status(name)
    if body is None:
        return ConnectorState(name=name, state="MISSING")
    connector = body.get("connector", {})
    return ConnectorState(
        name=name, state=str(connector.get("state", "UNKNOWN")), tasks=list(body.get("tasks", []))
    )


def apply_one(client: ConnectClient, definition: ConnectorDefinition) -> str:
    """Create or update one connector unless Connect already holds this exact config."""
    current = client.get_config(definition.name)
    wanted = {**definition.config, "name": definition.name}
    if current is not None and current == wanted:
        return "unchanged"
    created = client.put_config(definition.name, definition.config)
    return "created" if created else "updated"


def wait_running(
    client: ConnectClient, name: str, timeout_s: float = RUNNING_TIMEOUT_S,
    tolerate_failed_s: float = 0.0,
) -> ConnectorState:
    """Poll until the connector and its tasks run; ConnectError on FAILED or timeout.

    ``tolerate_failed_s`` ignores a FAILED state read just after a restart,
    which may still be the one the restart is curing.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    state = state_of(client, name)
    while True:
        failed = [task for task in state.tasks if task.get("state") == "FAILED"]
        settled = time.monotonic() - started >= tolerate_failed_s
        if settled and (state.state == "FAILED" or failed):
            trace = (failed[0] if failed else {}).get("trace", "") or ""
            first = trace.strip().splitlines()[0] if trace.strip() else "no trace"
            raise ConnectError(f"connector {name} FAILED: {first}")
        if state.running:
            return state
        if time.monotonic() > deadline:
            raise ConnectError(
                f"connector {name} not RUNNING after {timeout_s:.0f}s (state {state.state}, "
                f"tasks {[task.get('state') for task in state.tasks]})"
            )
        time.sleep(0.5)
        state = state_of(client, name)


def apply(settings: Settings, timeout_s: float = RUNNING_TIMEOUT_S) -> list[ApplyResult]:
    """Apply every definition in connectors/ and wait until each runs."""
    write_connect_secrets(settings)
    results = []
    with ConnectClient(settings.connect_url) as client:
        for definition in load(settings):
            change = apply_one(client, definition)
            state = wait_running(client, definition.name, timeout_s)
            results.append(ApplyResult(name=definition.name, change=change, state=state))
    return results


def status(settings: Settings) -> list[ConnectorState]:
    with ConnectClient(settings.connect_url) as client:
        return [state_of(client, definition.name) for definition in load(settings)]


def restart(settings: Settings, timeout_s: float = RUNNING_TIMEOUT_S) -> list[ConnectorState]:
    """Restart every connector with its tasks, then wait until they run again."""
    states = []
    with ConnectClient(settings.connect_url) as client:
        for definition in load(settings):
            client.restart(definition.name)
            states.append(
                wait_running(client, definition.name, timeout_s, tolerate_failed_s=10.0)
            )
    return states
