"""SIGKILL the worker while its change agent is in the middle of the change topic.

The change agent sends a whole batch of commands before it waits for the
broker and records the batch as handled, so a kill finds commands on the
commands topic whose changes the ledger does not count yet. After the restart
those changes are routed again (their commands sent twice) and the CRM must
still end exactly as the rules say: one create and one update per row, every
row's final code held by one record, renames applied after their inserts.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

import pytest

from acct2crm.model.keys import offset_key
from acct2crm.progress import handled_offsets
from acct2crm.settings import Settings
from tests.faults.app.test_worker_crash import ours, start_worker, worker_pid
from tests.support.memory_crm import match_key
from tests.support.sync import Pipeline, end_offset, unique_tag

pytestmark = pytest.mark.integration

ROWS = 400
LATENCY_MS = 60  # the CRM is slow: the command side lags, the change agent runs ahead


def test_sigkill_mid_change_batch_writes_each_row_exactly_once(stack_settings: Settings) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("CB")
    since = pipe.crm_write_seq()
    changes_start = end_offset(stack_settings, stack_settings.change_topic)
    commands_start = end_offset(stack_settings, stack_settings.commands_topic)
    pipe.faults(latency_ms=LATENCY_MS)
    try:
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for n in range(ROWS):  # an insert, then a rename of the same row
            statements.append(("INSERT INTO accounting.customer (code, name) VALUES (%s, %s) "
                               "RETURNING id", (f"{tag}-{n:03}", f"Customer {n}")))
            statements.append(("UPDATE accounting.customer SET code = %s WHERE code = %s",
                               (f"{tag}-R{n:03}", f"{tag}-{n:03}")))
        ids = [int(row) for row in pipe.many(statements)[0::2]]
        changes_end = changes_start + 2 * ROWS

        deadline = time.monotonic() + 120
        halfway = commands_start + ROWS // 2
        while end_offset(stack_settings, stack_settings.commands_topic) < halfway:
            assert time.monotonic() < deadline, "the change agent never started"
            time.sleep(0.01)
        pid = worker_pid(stack_settings)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while worker_pid(stack_settings) is not None:
            assert time.monotonic() < deadline, "the killed worker still runs"
            time.sleep(0.1)
        handled = handled_offsets(stack_settings).get(offset_key(stack_settings.change_topic, 0))
        print(f"at the kill: change ledger at {handled}, the burst ends at {changes_end - 1}")
        assert handled is None or handled < changes_end - 1, "the kill came after the change agent"

        start_worker(stack_settings)
        results = pipe.results(ids, 2 * ROWS, timeout_s=300, distinct=True)
    finally:
        if worker_pid(stack_settings) is None:
            start_worker(stack_settings)  # never leave the shared stack without its worker
        pipe.faults(latency_ms=0)
        pipe.close()

    sent = end_offset(stack_settings, stack_settings.commands_topic) - commands_start
    print(f"commands sent for {2 * ROWS} changes: {sent}")
    # the moment under test: a batch's commands were out, its offsets not yet counted
    assert sent > 2 * ROWS, "the kill did not land inside a batch of the change agent"
    assert not [r for r in results if r["action"] in ("skipped_duplicate_code", "failed")]
    records = pipe.crm_all(tag)
    assert max(Counter(match_key(r["code"]) for r in records).values()) == 1
    by_ref = {r["external_ref"]: r for r in records}
    for n, row in enumerate(ids):
        assert by_ref[f"default:{row}"]["code"] == f"{tag}-R{n:03}"
    assert len(records) == ROWS
    kinds = Counter(w["kind"] for w in ours(pipe, since, tag))
    assert (kinds["create"], kinds["update"]) == (ROWS, ROWS), f"CRM writes: {dict(kinds)}"
