"""A waiting tenant's lane keeps a few commands in memory and reads the rest back from Kafka.

A lane holds at most ``lane_max_held`` commands; while its CRM is down, the
commands past that are not kept: the lane notes where its spilled run starts
and ends and, once the queue is empty again, reads them back from the
commands topic (app/lanes.py). Here the worker runs with a lane of 4 on the
real stack, the CRM goes down, and 14 inserts and 4 renames of some of them
arrive. Once the CRM is back, every change reaches it exactly once, each row's
changes in commit order, and nothing fails.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

import pytest

from acct2crm.settings import Settings
from tests.faults.app.test_lane_wait_restart import lanes_now
from tests.faults.app.test_worker_crash import start_worker, worker_pid
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

HELD = 4
ROWS, RENAMED = 14, 4


def restart_worker(settings: Settings) -> None:
    """Stop the stack's worker and start it again with ``settings``."""
    pid = worker_pid(settings)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while worker_pid(settings) is not None:
        assert time.monotonic() < deadline, "the worker did not stop"
        time.sleep(0.1)
    start_worker(settings)


def test_a_lane_past_its_limit_reads_spilled_commands_back_in_order_once_each(
    stack_settings: Settings,
) -> None:
    small = stack_settings.model_copy(update={"lane_max_held": HELD})
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("S")
    try:
        restart_worker(small)
        warm = pipe.insert(f"{tag}-W")
        pipe.results([warm], 1, timeout_s=180)  # the restarted worker is at work
        since = pipe.crm_write_seq()
        pipe.faults(down=True)
        rows = [pipe.insert(f"{tag}-{n:03}", name=f"Customer {n}") for n in range(ROWS)]
        for row in rows[:RENAMED]:  # the rename must follow its row's create
            pipe.update(row, code=f"{tag}-R{row}")
        deadline = time.monotonic() + 60
        seen: dict[str, Any] = {}
        while not (seen.get("spilled") and seen.get("state") == "waiting_for_crm"):
            assert time.monotonic() < deadline, f"the lane never spilled: {seen}"
            time.sleep(0.2)
            seen = lanes_now(stack_settings).get(stack_settings.tenant) or {}
        assert seen["queued"] <= HELD  # the rest is in Kafka only, not in memory
        assert not [w for w in pipe.crm_writes_since(since) if w["code"].startswith(tag)]
        pipe.faults(down=False)
        results = pipe.results(rows, ROWS + RENAMED, timeout_s=180, distinct=True)
    finally:
        pipe.faults(down=False)
        restart_worker(stack_settings)  # the stack's worker as the other tests expect it
        pipe.close()

    changes: dict[tuple[int, Any], str] = {}  # a change read twice has a second result
    for r in results:
        changes.setdefault((r["accounting_id"], (r.get("source") or {}).get("lsn")), r["action"])
    assert Counter(changes.values()) == {"created": ROWS, "updated": RENAMED}
    time.sleep(2)  # a write made twice would show by now
    writes = [w for w in pipe.crm_writes_since(since) if w["code"].startswith(tag)]
    assert Counter(w["kind"] for w in writes) == {"create": ROWS, "update": RENAMED}
    for row in rows[:RENAMED]:  # each row's create before its rename, once each
        n = rows.index(row)
        mine = [(w["kind"], w["code"]) for w in writes
                if w["code"] in (f"{tag}-{n:03}", f"{tag}-R{row}")]
        assert mine == [("create", f"{tag}-{n:03}"), ("update", f"{tag}-R{row}")]
    codes = {r["code"] for r in pipe.crm_all(tag)}
    assert codes == ({f"{tag}-{n:03}" for n in range(RENAMED, ROWS)}
                     | {f"{tag}-R{row}" for row in rows[:RENAMED]} | {f"{tag}-W"})
