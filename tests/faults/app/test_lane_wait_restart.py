"""A tenant's lane waits for its CRM, shows it, and survives a stop meanwhile.

The command agent hands each tenant's commands to that tenant's lane and does
not wait for them (app/lanes.py); the ledger records only what is done. Here
the CRM goes down with commands queued, the status page must say so, and
the worker is killed while they wait; or the CRM is slow and the worker
is stopped (SIGTERM) with CRM calls in flight. The restarted worker reads everything
past the ledger's prefix again: every change reaches the CRM exactly once
(one create per row, one update per edit), nothing fails.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from acct2crm.settings import Settings
from tests.faults.app.test_worker_crash import start_worker, worker_pid
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

BEFORE, DURING = 10, 20


def lanes_now(settings: Settings) -> dict[str, Any]:
    try:
        body = httpx.get(settings.status_url, timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return dict(body.get("lanes") or {})


@pytest.mark.parametrize(("fault", "stop"), [
    ({"down": True}, signal.SIGKILL),  # the lane waits, retrying; the worker dies
    ({"latency_ms": 400}, signal.SIGTERM),  # CRM calls in flight when the lanes are stopped
])
def test_a_waiting_lane_is_shown_and_a_stop_meanwhile_writes_each_change_once(
    stack_settings: Settings, fault: dict[str, Any], stop: signal.Signals,
) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("L")
    since = pipe.crm_write_seq()
    try:
        first = [pipe.insert(f"{tag}-{n:03}", name=f"Customer {n}") for n in range(BEFORE)]
        pipe.results(first, BEFORE)
        pipe.faults(**fault)  # the tenant's lane waits for its CRM, in order
        later = [pipe.insert(f"{tag}-{n:03}", name=f"Customer {n}")
                 for n in range(BEFORE, BEFORE + DURING)]
        for n, row in enumerate(first):
            pipe.update(row, name=f"Edited {n}")
        deadline = time.monotonic() + 60
        while True:
            lane = lanes_now(stack_settings).get(stack_settings.tenant) or {}
            busy = lane.get("state") == ("waiting_for_crm" if "down" in fault else "applying")
            if lane.get("queued") and busy:
                break
            assert time.monotonic() < deadline, f"the lane never showed its wait: {lane}"
            time.sleep(0.2)
        assert lane["waiting_reason"] or "down" not in fault
        assert lane["oldest_waiting_s"] is not None
        pid = worker_pid(stack_settings)
        assert pid is not None
        os.kill(pid, stop)
        while worker_pid(stack_settings) is not None:
            assert time.monotonic() < deadline + 60, "the killed worker still runs"
            time.sleep(0.1)
        pipe.faults(down=False, latency_ms=0)
        start_worker(stack_settings)
        ids = first + later
        results = pipe.results(ids, 2 * BEFORE + DURING, timeout_s=180, distinct=True)
    finally:
        if worker_pid(stack_settings) is None:
            start_worker(stack_settings)  # never leave the stack without its worker
        pipe.faults(down=False, latency_ms=0)
        pipe.close()

    assert not [r for r in results if r["action"] in ("failed", "skipped_duplicate_code")]
    kinds = Counter(w["kind"] for w in pipe.crm_writes_since(since)
                    if w["code"].startswith(tag))
    print(f"CRM writes: {dict(kinds)}")
    assert (kinds["create"], kinds["update"]) == (BEFORE + DURING, BEFORE)
    records = {r["external_ref"]: r for r in pipe.crm_all(tag)}
    assert len(records) == BEFORE + DURING
    for n, row in enumerate(first):
        assert records[f"{stack_settings.tenant}:{row}"]["name"] == f"Edited {n}"
