"""``status`` and ``history`` answer from the result index, not a scan of the results topic.

The volume part writes 50,000 results to a scratch results topic (its own
index under a scratch home, as a reader with no worker would): the first call
catches up once; after that a status reads only the ledger's tail and the
last failures, and a history only that code's results. The worker keeps the
real index current by itself.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from acct2crm import progress, result_index
from acct2crm.progress import LAST_FAILURES, code_history, sync_progress, tenant_counts
from acct2crm.settings import Settings
from acct2crm.tenant_status import tenants_view
from devstack.result_flood import FAILURE_EVERY, flood_code, write_results

pytestmark = pytest.mark.integration

COUNT = 50_000
CODES = 5_000


@pytest.fixture
def scratch(stack_settings: Settings, tmp_path: Path) -> Settings:
    """The stack's settings with a results topic and a home folder of the test's own."""
    topic = f"acct2crm-test-results-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack_settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    return stack_settings.model_copy(update={"results_topic": topic, "home": tmp_path})


def test_status_and_history_do_not_scan_the_results(scratch: Settings) -> None:
    write_results(scratch, COUNT, tag="VOL", codes=CODES)
    failed = len(range(0, COUNT, FAILURE_EVERY))

    first = result_index.ReadStats()
    sync_progress(scratch, first)
    assert first.messages >= COUNT  # a reader with an empty index catches up once

    again = result_index.ReadStats()
    found = sync_progress(scratch, again)
    assert found.counts == {"created": COUNT - failed, "failed": failed}
    assert len(found.last_failures) == LAST_FAILURES
    newest_failure = flood_code("VOL", (COUNT - 1) // FAILURE_EVERY * FAILURE_EVERY, CODES)
    assert found.last_failures[-1]["code"] == newest_failure
    # the ledger's tail (a window at most) and the last failures, never the results
    assert again.messages < 2_000 + 10 * LAST_FAILURES

    history = result_index.ReadStats()
    records = code_history(scratch, flood_code("VOL", 7, CODES), history)
    assert len(records) == COUNT // CODES
    assert {r["code"] for r in records} == {flood_code("VOL", 7, CODES)}
    assert history.messages == COUNT // CODES  # one read per result of that code


def test_status_counts_each_tenant_from_the_index(
    scratch: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``status --json``'s ``tenants`` counts: once caught up, nothing of the results is read
    again (they took a scan of the whole results topic per call: 51 s at 3.5M results)."""
    write_results(scratch, COUNT, tag="TVOL", codes=CODES)
    write_results(scratch.model_copy(update={"tenant": "acme"}), 300, tag="TACME", codes=30)
    failed, acme_failed = len(range(0, COUNT, FAILURE_EVERY)), len(range(0, 300, FAILURE_EVERY))
    expected = {"default": {"created": COUNT - failed, "failed": failed},
                "acme": {"created": 300 - acme_failed, "failed": acme_failed}}
    first = result_index.ReadStats()
    assert tenant_counts(scratch, first) == expected
    assert first.messages >= COUNT + 300  # an empty index catches up once

    again = result_index.ReadStats()
    assert tenant_counts(scratch, again) == expected
    assert again.messages == 0
    # the view status prints (the registry's tenants: here the default alone) never scans
    def scan(settings: Settings, timeout_s: float = 5.0) -> Iterator[dict[str, Any]]:
        raise AssertionError("the results topic was scanned")
        yield {}

    with monkeypatch.context() as patch:
        patch.setattr(progress, "iter_results", scan)
        assert tenants_view(scratch, [])["default"]["counts"] == expected["default"]
    # and without a usable index, a scan still gives the same counts
    blocked = scratch.home / "not-a-folder"
    blocked.write_text("a file where the home folder should be")
    assert tenant_counts(scratch.model_copy(update={"home": blocked})) == expected


def test_the_worker_keeps_the_index_current(stack_settings: Settings) -> None:
    write_results(stack_settings, 300, tag=f"IDX{uuid.uuid4().hex[:6]}", codes=300)
    consumer = Consumer({"bootstrap.servers": stack_settings.kafka_bootstrap,
                         "group.id": "acct2crm-test-index"})
    try:
        _, high = consumer.get_watermark_offsets(
            TopicPartition(stack_settings.results_topic, 0), timeout=10)
    finally:
        consumer.close()
    deadline = time.monotonic() + 30
    indexed = -1
    while time.monotonic() < deadline:
        with sqlite3.connect(result_index.index_path(stack_settings)) as db:
            row = db.execute("SELECT next_offset FROM position WHERE topic = ?",
                             (stack_settings.results_topic,)).fetchone()
        indexed = int(row[0]) if row else -1
        if indexed >= high:
            break
        time.sleep(0.5)
    assert indexed >= high, f"the worker indexed up to {indexed}, the topic ends at {high}"


def test_readers_catching_up_together_count_each_result_once(scratch: Settings) -> None:
    write_results(scratch, 20_000, tag="RACE", codes=1_000)
    with ThreadPoolExecutor(max_workers=3) as pool:
        added = list(pool.map(lambda _: result_index.catch_up(scratch), range(3)))
    result_index.catch_up(scratch)  # whatever a reader gave up on, the next one finishes
    failed = len(range(0, 20_000, FAILURE_EVERY))
    assert result_index.counts(scratch) == {"created": 20_000 - failed, "failed": failed}
    assert sum(added) <= 20_000
    assert len(result_index.code_offsets(scratch, flood_code("RACE", 3, 1_000))) == 20


def test_without_a_usable_index_status_and_history_still_answer(scratch: Settings) -> None:
    write_results(scratch, 300, tag="NOIDX", codes=100)
    blocked = scratch.home / "not-a-folder"
    blocked.write_text("a file where the home folder should be")
    reader = scratch.model_copy(update={"home": blocked})
    found = sync_progress(reader)
    failed = len(range(0, 300, FAILURE_EVERY))
    assert found.counts == {"created": 300 - failed, "failed": failed}
    assert len(code_history(reader, flood_code("NOIDX", 5, 100))) == 3
