"""What in a status report needs the operator: ``problems`` and ``status --check``.

A monitor or a script cannot read the human form, and ``status`` itself
exits 0 whatever it finds (it reports; a report is not a failure). So the
report lists its problems, one line each, and ``status --check`` exits 1
when that list is not empty. A paused tenant is not a problem: the operator
paused it. Failed results are not either: they are bad rows for an
accountant to mend, shown under ``last_failures``, and the line goes on.
"""

from __future__ import annotations

from typing import Any

from acct2crm.tenant_status import CRM_WAITS


def problems(report: dict[str, Any]) -> list[str]:
    """One line per thing that is down, waiting, lost or warned of; empty when all is well."""
    found: list[str] = []
    if report.get("kafka_error"):
        found.append(f"kafka: {report['kafka_error']}")
    for name, service in (report.get("services") or {}).items():
        if service.get("state") != "running":
            found.append(f"{name} is {service.get('state')}")
    for number, worker in enumerate(report.get("workers") or [], start=1):
        if number > 1 and worker.get("state") != "running":  # the first is services.worker
            found.append(f"worker {number} is {worker.get('state')}")
    found.extend(_connector_problems(report))
    found.extend(_sync_problems(report))
    found.extend(f"warning: {warning}" for warning in report.get("warnings") or [])
    return found


def _connector_problems(report: dict[str, Any]) -> list[str]:
    connectors = report.get("connectors") or [report.get("connector") or {}]
    found = []
    for connector in connectors:
        name = connector.get("name")
        if connector.get("state") != "RUNNING":
            detail = f": {connector['error']}" if connector.get("error") else ""
            state = connector.get("state")
            found.append(f"connector {name} is {state}{detail}" if name
                         else f"connector {state}{detail}")  # Connect did not say which
            continue
        for task in connector.get("tasks") or []:
            if task.get("state") != "RUNNING":
                found.append(f"connector {name} task {task.get('id')} is {task.get('state')}")
    return found


def _sync_problems(report: dict[str, Any]) -> list[str]:
    sync = report.get("sync") or {}
    tenants = report.get("tenants") or {}
    found = []
    waiting = {tenant: view["sync"] for tenant, view in tenants.items()
               if (view.get("sync") or {}).get("state") in CRM_WAITS}
    for tenant, state in sorted(waiting.items()):
        found.append(f"tenant {tenant} waits for its CRM: {state.get('waiting_reason')}")
    if not waiting and sync.get("state") in CRM_WAITS:  # a worker without the tenants' view
        found.append(f"sync waits for the CRM: {sync.get('waiting_reason')}")
    found.extend(f"sync waits for Kafka: {what}" for what in sync.get("kafka_waiting") or [])
    found.extend(f"lost: {lost}" for lost in sync.get("lost_offsets") or [])
    if sync.get("scope_error"):
        found.append(f"scope file error (previous scope kept): {sync['scope_error']}")
    if sync.get("mapping_error"):
        found.append(f"mapping file error (previous mapping kept): {sync['mapping_error']}")
    return found
