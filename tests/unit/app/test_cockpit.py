"""The cockpit's pure parts: the HTML (escaped), the bounded activity, metrics and log lines."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from acct2crm import metrics
from acct2crm.app import activity as activity_mod
from acct2crm.app.activity import Activity
from acct2crm.app.cockpit_web import holds
from acct2crm.app.status_html import (
    ConnectorView,
    TenantView,
    history_link,
    render_history,
    render_status,
)
from acct2crm.errors import CrmMisconfigured, CrmRetryable
from acct2crm.log_format import FIELDS, JsonFormatter, change_logged, logging_config
from acct2crm.settings import Settings

EVIL = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def failure(code: str | None, reason: str = "bad", at_ms: int = 1_700_000_000_000
            ) -> dict[str, Any]:
    return {"tenant": "default", "code": code, "accounting_id": 7, "op": "c",
            "action": "failed", "reason": reason, "applied_at": at_ms, "source": None}


def test_status_page_escapes_everything_people_typed() -> None:
    view = TenantView(
        tenant=EVIL, state="waiting_for_crm", waiting_reason=EVIL, waiting_since=time.time() - 90,
        lag={EVIL: 3}, counts_today={"failed": 1, EVIL: 2}, counting_since=time.time(),
        failures=[failure(EVIL, reason=EVIL)],
    )
    page = render_status([view], ConnectorView(EVIL, EVIL, ((EVIL, EVIL),), EVIL))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    # the history link carries the code percent-encoded, inside an escaped attribute
    assert 'href="/history/%3Cscript%3E' in page
    history = render_history(EVIL, {"default": [failure(EVIL, reason=EVIL)]})
    assert "<script>" not in history and "<img" not in history


def test_status_page_shows_each_state() -> None:
    now = 1_800_000_000.0
    running = TenantView("default", "running", lag={"t[0]": 4, "c[0]": None},
                         counts_today={"created": 5})
    page = render_status([running], ConnectorView("c", "RUNNING", (("0", "RUNNING"),)), now=now)
    assert 'data-state="running"' in page and ">Running<" in page
    assert 'class="lag-total">4<' in page and "<b>5</b> created" in page
    # the actions results carry, each once: no "skipped" beside "skipped_duplicate_code"
    assert re.findall(r'data-action="([^"]+)"', page) == [
        "created", "updated", "unchanged", "skipped_duplicate_code", "failed"]
    assert 'http-equiv="refresh" content="5"' in page and "<script" not in page
    waiting = TenantView("default", "waiting_for_crm", waiting_reason="CRM answered 503",
                         waiting_since=now - 300)
    page = render_status([waiting], ConnectorView("c", "FAILED"), now=now)
    assert "Waiting for the CRM" in page and "(5 min): CRM answered 503" in page
    assert "since 2027-01-15 07:55:00 UTC" in page
    assert 'class="state bad">FAILED' in page
    paused = render_status([TenantView("t2", "paused")], ConnectorView("c", "RUNNING"), now=now)
    assert ">Paused<" in paused
    listed = render_status(
        [TenantView("default", "running", failures=[failure("KH 1/2")])],
        ConnectorView("c", "RUNNING"), now=now,
    )
    assert f'href="{history_link("KH 1/2", "default")}"' in listed
    assert history_link("KH 1/2", "a b") == "/history/KH%201%2F2?tenant=a%20b"


def test_status_page_shows_what_waits_in_each_tenants_lane() -> None:
    now = time.time()
    waiting = TenantView("ta", "waiting_for_crm", waiting_reason="CRM down", lane={
        "queued": 2, "spilled": 1, "state": "waiting_for_crm",
        "waiting_reason": f"CRM down {EVIL}", "oldest_waiting_s": 41.7})
    idle = TenantView("tb", "running", lane={"queued": 0, "spilled": 0, "state": "idle"})
    html = render_status([waiting, idle], ConnectorView("c", "RUNNING"), now=now)
    ta, tb = html.split('data-tenant="ta"')[1], html.split('data-tenant="tb"')[1]
    assert '<b class="lane-queued">3</b> command(s) waiting, the oldest for 42 s' in ta
    assert EVIL not in html and "CRM down &lt;script&gt;" in ta
    assert "Lane: no command waiting." in tb


def test_activity_is_bounded_and_counts_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(activity_mod, "MAX_CODES", 3)
    monkeypatch.setattr(activity_mod, "PER_CODE", 2)
    seen = Activity()
    for i in range(5):
        for action in ("created", "updated", "failed"):
            seen.record({**failure(f"C{i}"), "action": action})
    tenant = seen.tenant("default")
    assert list(tenant.by_code) == ["c2", "c3", "c4"]  # oldest codes dropped first
    assert [r["action"] for r in tenant.history(" c4 ")] == ["updated", "failed"]
    assert tenant.counts_today == {"created": 5, "updated": 5, "failed": 5}
    assert len(tenant.failures) == 5
    tenant.day = "2000-01-01"  # a new day starts the counts again
    seen.record({**failure("C9"), "action": "created"})
    assert tenant.counts_today == {"created": 1}
    assert seen.tenants() == ["default"]


def sample(name: str, **labels: str) -> float:
    text = metrics.exposition().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and set(labels.items()) <= set(s.labels.items()))


def test_metrics_move_with_the_calls() -> None:
    t = "unit-tenant"
    two_s_ago = time.time() * 1000 - 2000
    metrics.result({"tenant": t, "action": "created", "source": {"ts_ms": two_s_ago}})
    metrics.result({"tenant": t, "action": "skipped", "source": {"ts_ms": 1}})
    assert sample("acct2crm_results_total", tenant=t, action="created") == 1
    assert sample("acct2crm_commit_to_crm_seconds_count", tenant=t) == 1  # writes only
    assert 1.5 < sample("acct2crm_commit_to_crm_seconds_sum", tenant=t) < 30
    metrics.crm_retry(t, CrmRetryable("CRM answered 429", status=429), 2.5)
    metrics.crm_retry(t, CrmMisconfigured("401", status=401), 1.0)
    metrics.crm_retry(t, CrmRetryable("CRM timed out on GET x"), 1.0)
    assert sample("acct2crm_crm_wait_seconds_total", tenant=t, reason="rate_limited") == 2.5
    assert sample("acct2crm_crm_retries_total", tenant=t, reason="configuration") == 1
    assert sample("acct2crm_crm_retries_total", tenant=t, reason="timeout") == 1
    metrics.set_connector("conn", {"connector": "RUNNING", "0": "FAILED"})
    assert sample("acct2crm_connector_state", connector="conn", task="0", state="FAILED") == 1
    assert sample("acct2crm_connector_state", connector="conn", task="0", state="RUNNING") == 0


def test_json_log_lines_carry_the_change_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="acct2crm.changes"):
        change_logged("default", 42, "KH001", "created")
    [record] = caplog.records
    line = json.loads(JsonFormatter().format(record))
    assert {k: line[k] for k in ("level", "tenant", "offset", "code", "action")} == {
        "level": "debug", "tenant": "default", "offset": 42, "code": "KH001", "action": "created"}
    assert set(line) <= {"ts", "logger", "message", "level", *FIELDS}


def test_debug_reaches_our_loggers_only() -> None:
    config = logging_config("json", "debug")
    assert config["root"]["level"] == "INFO"  # Kafka clients print fetched records at debug
    assert config["loggers"]["acct2crm"]["level"] == "DEBUG"
    assert logging_config("text", "warning")["root"]["level"] == "WARNING"


def test_counts_start_with_the_worker_then_at_midnight() -> None:
    seen = Activity().tenant("default")
    assert seen.counting_since == activity_mod.STARTED
    seen.day = "2000-01-01"
    seen.record(failure("C1"))
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert seen.counting_since == max(activity_mod.STARTED, midnight.timestamp())
    assert seen.counts_today == {"failed": 1}


def test_a_tenant_another_worker_holds_is_said_to_be_there() -> None:
    """With several workers, a page showed such a tenant Running with nothing done."""
    page = render_status([TenantView("acme", "elsewhere")], ConnectorView("c", "RUNNING"))
    assert ">On another worker<" in page and "does not hold its partition now" in page
    assert 'data-state="running"' not in page

    class Consumer:
        def assignment(self) -> set[TP]:
            return {TP(settings.change_topic, 1)}

    class Unstarted:
        def assignment(self) -> set[TP]:
            raise RuntimeError("consumer not started")

    settings = Settings()
    topology: Any = SimpleNamespace(app=SimpleNamespace(consumer=Consumer()))
    assert holds(settings, topology, 1) and not holds(settings, topology, 2)
    assert holds(settings, topology, None)  # no known partition: nothing to say otherwise
    topology.app.consumer = Unstarted()
    assert holds(settings, topology, 2)
