"""``acct2crm status``: endpoints, the state of every service, connector and progress.

The JSON form is a contract (docs/contract.md): the endpoint keys, ``services``
with ``{state, pid}`` for postgres, kafka, connect, crm and worker, ``lag`` and
``counts``; acct2crm adds ``connector``, ``last_failures``, ``kafka_error``
(credentials or TLS refused, or no answer: said within seconds, never a hang)
and ``sync`` (the
worker's own word: running, or waiting for the CRM and why), ``source`` (the
accounting database's identity, replication slot and Debezium heartbeat) and
``warnings`` (a source reset, a lost slot, a silent Connect, queued changes
nearing their topic's retention) and ``problems`` (status_check.py). ``crm_token`` is
included in JSON on purpose (an operator needs it to call the CRM) and masked
in the human form, which ends up in terminals and logs. ``postgres_dsn``
connects as printed on the local stack (its password included); for a
database elsewhere it carries no password. The human form shows only the
local stack's well-known password: any other one (a loopback tunnel to a real
database) is masked there, as the token is (``shown_dsn``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from confluent_kafka import KafkaException

from acct2crm import result_index
from acct2crm.app.lanes import describe as describe_lanes
from acct2crm.connect.client import ConnectClient
from acct2crm.connect.config import load
from acct2crm.connect.operations import state_of
from acct2crm.connector_states import connector_lines, every_connector_state
from acct2crm.errors import Acct2CrmError
from acct2crm.kafka_check import check_kafka
from acct2crm.kafka_io import admin_client
from acct2crm.local_stack import find_local_stack
from acct2crm.pause import pause_path, read_paused
from acct2crm.progress import oldest_unapplied_ms, retention_warning, sync_progress
from acct2crm.settings import Settings, shown_dsn
from acct2crm.source_watch import report as source_report
from acct2crm.status_check import problems
from acct2crm.tenant_status import tenants_view, worker_bodies
from acct2crm.topics import retention_of


def service_states(settings: Settings) -> dict[str, dict[str, Any]]:
    """The local stack's own view (with pids) when one is installed, else endpoint probes."""
    stack = find_local_stack()
    if stack is not None:
        return stack.service_states(settings)
    return {name: {"state": state, "pid": None} for name, state in probe_all(settings).items()}


def probe_all(settings: Settings) -> dict[str, str]:
    """``running`` or ``unreachable`` for each service, from its endpoint alone."""
    return {
        "postgres": _state(_postgres_answers(settings)),
        "kafka": _state(_kafka_answers(settings)),
        "connect": _state(_http_ok(settings.connect_url)),
        "crm": _state(
            _http_ok(
                f"{settings.crm_url}/api/customers?page=1&page_size=1",
                headers={"Authorization": f"Bearer {settings.crm_token.get_secret_value()}"},
            )
        ),
        "worker": _state(_http_ok(settings.status_url)),
    }


def _state(answers: bool) -> str:
    return "running" if answers else "unreachable"


def _postgres_answers(settings: Settings) -> bool:
    try:
        with psycopg.connect(settings.postgres_conninfo(), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _kafka_answers(settings: Settings) -> bool:
    try:
        return bool(admin_client(settings).list_topics(timeout=3).brokers)
    except (KafkaException, Acct2CrmError):  # e.g. a CA file that is missing
        return False


def _http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, timeout=2.0, headers=headers).status_code == 200
    except httpx.HTTPError:
        return False


def connector_state(settings: Settings) -> dict[str, Any]:
    try:
        definitions = load(settings)
        with ConnectClient(settings.connect_url) as client:
            return state_of(client, definitions[0].name).as_dict()
    except Acct2CrmError as exc:
        return {"name": None, "state": "UNREACHABLE", "tasks": [], "error": str(exc)}


def progress(settings: Settings) -> tuple[int, dict[str, int], list[dict[str, Any]]]:
    """Lag, counts per action and last failures, read from Kafka by the sync's progress module."""
    found = sync_progress(settings)
    counts = {str(action): int(n) for action, n in dict(found.counts).items()}
    return int(found.lag), counts, [dict(item) for item in found.last_failures]


def indexed_counts(settings: Settings) -> dict[str, int]:
    """Counts per action as far as the result index has them, for a Kafka that does not
    answer: the last known word, rather than none."""
    try:
        return result_index.counts(settings)
    except (sqlite3.Error, OSError):
        return {}


def worker_view(settings: Settings) -> dict[str, Any]:
    """What the worker says of itself: running, or waiting for the CRM and why."""
    try:
        answer = httpx.get(settings.status_url, timeout=2.0)
        body = answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        body = None
    if not isinstance(body, dict):
        return {"state": "unreachable"}
    keys = ("state", "paused", "waiting_reason", "waiting_since", "scope", "scope_error",
            "seeded", "kafka_waiting", "reading_back", "lost_offsets", "seeding", "mapping",
            "mapping_error", "catching_up", "lanes")
    return {key: body.get(key) for key in keys}


def source_view(settings: Settings, *, kafka: bool = True) -> dict[str, Any]:
    """The accounting database's identity, slot and heartbeat (source_watch.py)."""
    try:
        return source_report(settings, kafka=kafka)
    except Acct2CrmError as exc:
        return {"warnings": [], "error": str(exc)}


def retention_warnings(settings: Settings) -> list[str]:
    """Warnings for input topics whose oldest unapplied message nears its retention."""
    try:
        oldest = oldest_unapplied_ms(settings)
        if not oldest:
            return []
        retention = retention_of(settings)
    except (Acct2CrmError, KafkaException):
        return []
    now_ms = int(time.time() * 1000)
    found = []
    for topic, written_ms in oldest.items():
        if topic not in retention:
            continue
        warning = retention_warning(
            topic, now_ms - written_ms, retention[topic], settings.retention_warn_ratio
        )
        if warning:
            found.append(warning)
    return found


def collect(settings: Settings) -> dict[str, Any]:
    # a refused login, a TLS failure or a Kafka that is down is said in seconds, and
    # nothing else is read through it: each read would wait out its own timeout
    kafka_problem = check_kafka(settings, timeout_s=5.0)
    kafka = kafka_problem is None
    lag, counts, failures = progress(settings) if kafka else (-1, indexed_counts(settings), [])
    sync = worker_view(settings)
    stack = find_local_stack()
    sync["supervisor"] = stack.worker_supervision(settings) if stack is not None else None
    source = source_view(settings, kafka=kafka)
    sync["paused"] = _paused(settings)  # the pause file's word: right with the worker down
    report = {
        "postgres_dsn": settings.postgres_dsn,
        "kafka_bootstrap": settings.kafka_bootstrap,
        "connect_url": settings.connect_url,
        "crm_url": settings.crm_url,
        "crm_token": settings.crm_token.get_secret_value(),
        "status_url": settings.status_url,
        "services": service_states(settings),
        "connector": connector_state(settings),
        "connectors": every_connector_state(settings),  # every tenant's (connector_states.py)
        "lag": lag,
        "counts": counts,
        "last_failures": failures,
        "sync": sync,
        "source": source,
        "warnings": [*source.get("warnings", []), *(retention_warnings(settings) if kafka else [])],
        "kafka_error": None if kafka_problem is None else kafka_problem.message,
        **workers_and_tenants(settings, stack, kafka=kafka),
    }
    seeding = report.pop("seeding")
    if seeding is not None:  # several workers: the one seeding (or done), not worker 1's
        sync["seeding"] = seeding
    for view in report["tenants"].values():  # each other tenant's slot and heartbeat
        report["warnings"].extend((view.get("source") or {}).get("warnings") or [])
    report["problems"] = problems(report)  # what needs the operator (status_check.py)
    return report


def workers_and_tenants(settings: Settings, stack: Any, *, kafka: bool = True) -> dict[str, Any]:
    """``workers`` (every worker process of the local stack) and ``tenants`` (tenant_status);
    ``seeding``: the default tenant's, from whichever worker holds its partition."""
    states = getattr(stack, "worker_states", None)
    workers = states(settings) if states is not None else [
        {"state": worker_view(settings)["state"], "pid": None, "status_url": settings.status_url}
    ]
    urls = [w["status_url"] for w in workers if w.get("state") == "running"]
    bodies = worker_bodies(urls)
    return {
        "workers": [{"state": w["state"], "pid": w["pid"]} for w in workers],
        "tenants": tenants_view(settings, urls, kafka=kafka, bodies=bodies),
        "seeding": furthest_seeding(bodies) if len(urls) > 1 else None,
    }


# how far a worker's seeding of the default tenant's table got; with several workers only
# the one holding the tenant's partition seeds it, the others say "not_started"
SEEDING_RANK = {"not_started": 0, "paused": 1, "seeding": 2, "waiting_for_crm": 2, "done": 3}


def furthest_seeding(bodies: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The seeding report of the worker that got furthest (None when none says)."""
    found = [b["seeding"] for b in bodies if isinstance(b.get("seeding"), dict)]
    return max(found, key=lambda s: SEEDING_RANK.get(str(s.get("state")), 0), default=None)


def _paused(settings: Settings) -> dict[str, float]:
    """Paused tenants from the pause file itself: right with the worker down too."""
    try:
        return read_paused(pause_path(settings))
    except Acct2CrmError:
        return {}


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, default=str)


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def mask(secret: str) -> str:
    return secret[:2] + "..." + secret[-2:] if len(secret) > 8 else "****"


def seeding_line(seeding: Any) -> str:
    """Seeding the CRM-code table, while it is not done: how far, how fast, why waiting."""
    if not isinstance(seeding, dict) or seeding.get("state") in (None, "done"):
        return ""
    of = f" of {seeding['total']}" if seeding.get("total") is not None else ""
    line = (f"seeding    {seeding['state']}: {seeding.get('records')}{of} CRM customers, "
            f"{seeding.get('pages')} pages, {seeding.get('records_per_s')}/s; changes apply "
            "meanwhile")
    return line + (f" ({seeding['reason']})" if seeding.get("reason") else "")


def as_text(report: dict[str, Any]) -> str:
    """The human form; the CRM token is masked."""
    lines = [
        f"postgres   {shown_dsn(report['postgres_dsn'])}",
        f"kafka      {report['kafka_bootstrap']}",
        f"connect    {report['connect_url']}",
        f"crm        {report['crm_url']}  (token {mask(report['crm_token'])})",
        f"status     {report['status_url']}",
        "",
    ]
    for name, item in report["services"].items():
        pid = f"pid {item['pid']}" if item["pid"] else ""
        lines.append(f"  {name:<9} {item['state']:<10} {pid}".rstrip())
    connector = report["connector"]
    tasks = ", ".join(f"task {t['id']} {t['state']}" for t in connector.get("tasks", []))
    if len(report.get("connectors", [])) > 1:  # many tenants: each tenant's connector
        lines.extend(connector_lines(report["connectors"]))
    else:
        lines.append(f"  connector {connector.get('state')} {tasks}".rstrip())
    lines.append("")
    sync = report.get("sync", {})
    restarts = sync.get("supervisor") or {}
    if restarts.get("restarts"):
        lines.append(
            f"worker     restarted {restarts['restarts']} time(s) by its supervisor; last exit "
            f"code {restarts.get('last_exit_code')}"
            + ("; starting again soon" if restarts.get("child_pid") is None else "")
        )
    for tenant, since in sorted((sync.get("paused") or {}).items()):
        lines.append(f"sync       PAUSED tenant {tenant} since {_when(since)}: its changes wait "
                     f"in Kafka (acct2crm resume {tenant})")
    if sync.get("state") == "waiting_for_crm":
        lines.append(f"sync       WAITING for the CRM: {sync.get('waiting_reason')}")
    elif sync.get("state") == "running":
        lines.append(f"sync       running; scope: {sync.get('scope')}")
    if seeding_line(sync.get("seeding")):
        lines.append(seeding_line(sync.get("seeding")))
    for waiting in sync.get("kafka_waiting") or []:
        lines.append(f"sync       WAITING for Kafka: {waiting}")
    if sync.get("reading_back"):
        lines.append(f"sync       WAITING to read back {sync['reading_back']}")
    lines += describe_lanes(sync.get("lanes"))  # per tenant: commands waiting in its lane
    for where, left in ((sync.get("catching_up") or {}).get("behind") or {}).items():
        lines.append(f"sync       {where}: {left} message(s) past the last handled")
    if report.get("kafka_error"):
        lines.append(f"KAFKA      {report['kafka_error']}")
    for lost in sync.get("lost_offsets") or []:
        lines.append(f"LOST       {lost}")
    if sync.get("scope_error"):
        lines.append(f"scope file error (previous scope kept): {sync['scope_error']}")
    source = report.get("source") or {}
    slot = source.get("slot") or {}
    if source.get("system_identifier"):
        lines.append(
            f"source     cluster {source['system_identifier']}; slot "
            f"{slot.get('wal_status') or 'missing'}"
            f"{', active' if slot.get('active') else ''}; "
            f"heartbeat {source.get('heartbeat_at') or 'none yet'}"
        )
    for warning in report.get("warnings", []):
        lines.append(f"WARNING {warning}")
    if sync.get("mapping_error"):
        lines.append(f"mapping file error (previous mapping kept): {sync['mapping_error']}")
    unread = " (Kafka does not answer)" if report.get("kafka_error") else ""
    lines.append(f"lag {'unknown' if unread else report['lag']}{unread}")
    counts = report["counts"]
    lines.append(
        "counts " + (", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none yet")
        + (" (as far as indexed)" if unread and counts else "")
    )
    for failure in report["last_failures"]:
        code = failure.get("code") or f"row {failure.get('accounting_id')}"
        lines.append(f"  failed: {code} at {failure.get('applied_at')}: {failure.get('reason')}")
    found = report.get("problems") or []
    lines.append(f"health     {len(found)} problem(s):" if found else "health     ok")
    lines.extend(f"  {problem}" for problem in found)
    return "\n".join(lines)
