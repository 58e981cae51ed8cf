"""Every Prometheus metric of the worker, in one place, and the one-line calls that move them.

The code paths (pipeline, sink, seeding) call the small functions below and
never touch ``prometheus_client`` themselves, so the names and labels stay in
one file (listed in the README). Labels stay low in cardinality: tenant,
action, outcome, reason kind, topic and partition; never a code or a name.
Values that are a state rather than an event (lag, waiting, connector state)
are read when Prometheus scrapes (``app/cockpit_web.py``).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from acct2crm.errors import CrmMisconfigured, CrmRetryable

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4"  # the server adds the charset (utf-8)

CHANGES = Counter(
    "acct2crm_changes_consumed", "Changes read from the change topic.", ["tenant"],
    registry=REGISTRY,
)
RESULTS = Counter(
    "acct2crm_results", "Results written, by action.", ["tenant", "action"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "acct2crm_dead_letters", "Records written to the dead-letter topic.", ["tenant"],
    registry=REGISTRY,
)
CRM_CALLS = Counter(
    "acct2crm_crm_calls", "CRM calls by outcome (ok or the error's kind).",
    ["tenant", "operation", "outcome"], registry=REGISTRY,
)
CRM_WRITES = Counter(
    "acct2crm_crm_writes", "Records written to the CRM, alone or inside a batch, by outcome.",
    ["tenant", "operation", "outcome"], registry=REGISTRY,
)
CRM_LATENCY = Histogram(
    "acct2crm_crm_call_seconds", "How long one CRM call took.", ["tenant", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
CRM_RETRIES = Counter(
    "acct2crm_crm_retries", "CRM calls retried (rule R4: wait, never drop), by reason.",
    ["tenant", "reason"], registry=REGISTRY,
)
CRM_WAIT = Counter(
    "acct2crm_crm_wait_seconds", "Time spent waiting for the CRM before a retry, by reason.",
    ["tenant", "reason"], registry=REGISTRY,
)
SEEDED_CUSTOMERS = Gauge(
    "acct2crm_seed_customers", "CRM customers read into the code table by the first seeding.",
    ["tenant"], registry=REGISTRY,
)
SEED_DONE = Gauge(
    "acct2crm_seed_done", "1 once the code table is seeded from the CRM.", ["tenant"],
    registry=REGISTRY,
)
COMMIT_TO_CRM = Histogram(
    "acct2crm_commit_to_crm_seconds",
    "From the accounting commit (source.ts_ms) to the CRM write being answered.",
    ["tenant"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
    registry=REGISTRY,
)
LAG = Gauge(
    "acct2crm_lag", "Messages not handled yet, per topic partition (read at scrape).",
    ["tenant", "topic", "partition"], registry=REGISTRY,
)
WAITING = Gauge(
    "acct2crm_waiting_for_crm", "1 while the sink waits for the CRM (read at scrape).",
    ["tenant", "reason"], registry=REGISTRY,
)
CONNECTOR_STATE = Gauge(
    "acct2crm_connector_state",
    "Kafka Connect's state of the connector and its tasks: 1 on the current state.",
    ["connector", "task", "state"], registry=REGISTRY,
)
WORKER = Info(
    "acct2crm_worker", "How this worker process runs (its event loop).", registry=REGISTRY
)
CONNECTOR_STATES = ("RUNNING", "PAUSED", "FAILED", "UNASSIGNED", "RESTARTING", "STOPPED",
                    "MISSING", "UNREACHABLE")
WRITES = ("created", "updated")


@lru_cache(maxsize=4096)
def _per_change(metric: Counter | Histogram, *labels: str) -> Any:
    """A metric's child for these labels, looked up once: ``labels()`` takes a lock and
    checks the labels on every call, and the metrics moved for every change or record
    written use it (no child is ever removed from them)."""
    return metric.labels(*labels)


def worker_info(*, event_loop: str) -> None:
    WORKER.info({"event_loop": event_loop})


def change_consumed(tenant: str) -> None:
    _per_change(CHANGES, tenant).inc()


def result(record: dict[str, Any]) -> None:
    """A result left: count it, and time commit -> CRM for a write."""
    tenant, action = str(record.get("tenant")), str(record.get("action"))
    _per_change(RESULTS, tenant, action).inc()
    ts_ms = (record.get("source") or {}).get("ts_ms")
    if action in WRITES and ts_ms:
        _per_change(COMMIT_TO_CRM, tenant).observe(max(0.0, time.time() - ts_ms / 1000.0))


def dead_letter(tenant: str) -> None:
    DEAD_LETTERS.labels(tenant).inc()


def crm_call(tenant: str, operation: str, outcome: str, seconds: float) -> None:
    CRM_CALLS.labels(tenant, operation, outcome).inc()
    CRM_LATENCY.labels(tenant, operation).observe(seconds)


def crm_write(tenant: str, operation: str, outcome: str) -> None:
    """One record written (``create`` or ``update``), whether its call carried one or many."""
    _per_change(CRM_WRITES, tenant, operation, outcome).inc()


def retry_reason(exc: BaseException) -> str:
    """A short, fixed word for why the CRM is waited for (never the message itself)."""
    if isinstance(exc, CrmMisconfigured):
        return "configuration"
    status = getattr(exc, "status", None)
    if status == 429:
        return "rate_limited"
    if isinstance(status, int) and status >= 500:
        return "crm_error"
    if isinstance(exc, CrmRetryable) and "timed out" in str(exc):
        return "timeout"
    return "unreachable"


def crm_retry(tenant: str, exc: BaseException, delay_s: float) -> None:
    reason = retry_reason(exc)
    CRM_RETRIES.labels(tenant, reason).inc()
    CRM_WAIT.labels(tenant, reason).inc(delay_s)


def seed_progress(tenant: str, customers: int, *, done: bool = False) -> None:
    SEEDED_CUSTOMERS.labels(tenant).set(customers)
    SEED_DONE.labels(tenant).set(1 if done else 0)


def set_lag(tenant: str, topic: str, partition: int, lag: int) -> None:
    LAG.labels(tenant, topic, str(partition)).set(lag)


def set_waiting(tenant: str, reason: str | None) -> None:
    """One series per reason kind; the current one is 1, the others 0."""
    for kind in ("unavailable", "configuration"):
        WAITING.labels(tenant, kind).set(1 if reason == kind else 0)


def set_connector(name: str, states: dict[str, str]) -> None:
    """``states``: ``{"connector": STATE, "0": STATE, ...}`` from Connect's REST."""
    for task, current in states.items():
        for state in {*CONNECTOR_STATES, current}:
            CONNECTOR_STATE.labels(name, task, state).set(1 if state == current else 0)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
