"""``/metrics`` on the worker's web port: what Prometheus scrapes moves with what the sync does."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acct2crm.settings import Settings
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(settings: Settings) -> Samples:
    answer = httpx.get(settings.status_url.removesuffix("/status") + "/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_metrics_follow_the_sync(stack_settings: Settings) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("M")
    before = scrape(stack_settings)
    good = pipe.insert(f"{tag}-OK")
    bad = pipe.insert(f"{tag}-BAD", tax_code="123")
    pipe.results([good, bad], 2)
    pipe.faults(down=True)
    try:
        waited = pipe.insert(f"{tag}-WAIT")
        deadline = time.monotonic() + 60
        while value(scrape(stack_settings), "acct2crm_waiting_for_crm",
                    tenant="default", reason="unavailable") != 1:
            assert time.monotonic() < deadline, "never shown waiting for the CRM"
            time.sleep(0.5)
    finally:
        pipe.faults(down=False)
    pipe.results([waited], 1, timeout_s=120)
    after = scrape(stack_settings)
    pipe.close()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    t = {"tenant": "default"}
    assert grew("acct2crm_changes_consumed_total", **t) >= 3
    assert grew("acct2crm_results_total", action="created", **t) >= 2
    assert grew("acct2crm_results_total", action="failed", **t) >= 1
    assert grew("acct2crm_dead_letters_total", **t) >= 1
    # records written, alone or in a batch call; calls: one per HTTP call
    assert grew("acct2crm_crm_writes_total", operation="create", outcome="ok", **t) >= 2
    assert grew("acct2crm_crm_writes_total", outcome="CrmRejected", **t) >= 1
    assert grew("acct2crm_crm_calls_total", outcome="CrmRetryable", **t) >= 1
    calls = sum(grew("acct2crm_crm_call_seconds_count", operation=op, **t)
                for op in ("create", "write_batch"))
    assert calls >= 1
    assert grew("acct2crm_crm_retries_total", reason="crm_error", **t) >= 1
    assert grew("acct2crm_crm_wait_seconds_total", reason="crm_error", **t) > 0
    assert grew("acct2crm_commit_to_crm_seconds_count", **t) >= 2
    assert value(after, "acct2crm_seed_done", **t) == 1
    assert value(after, "acct2crm_worker_info", event_loop="uvloop") == 1  # the default: auto
    started = (stack_settings.home / "logs" / "worker.log").read_text(errors="replace")
    assert "event loop: uvloop (setting event_loop = auto)" in started
    assert value(after, "acct2crm_waiting_for_crm", **t) == 0
    for topic in (stack_settings.change_topic, stack_settings.commands_topic):
        assert ("acct2crm_lag", frozenset({**t, "topic": topic, "partition": "0"}.items())) in after
    connector = {"connector": "acct2crm-accounting-customer", "state": "RUNNING"}
    assert value(after, "acct2crm_connector_state", task="connector", **connector) == 1
    assert value(after, "acct2crm_connector_state", task="0", **connector) == 1
