"""A rebalance while a tenant's lane waits: its lanes stop, and nothing is lost or doubled.

A second worker joins the consumer group while the CRM is down and the
tenant's commands wait in its lane. Faust revokes the partitions of every
member and assigns them again; the lanes of the revoked partition stop (no
CRM write after the revocation) and whoever owns the partition next starts
from the ledger's prefix. When the CRM answers, every change is written
exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from acct2crm.settings import Settings
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

ROWS = 15
SECOND_PORT_STEP = 7  # the second worker's status port: inside this stack's band


def lanes_at(port: int) -> dict[str, Any] | None:
    try:
        return dict(httpx.get(f"http://127.0.0.1:{port}/status", timeout=3.0).json()["lanes"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def test_a_rebalance_while_a_lane_waits_loses_and_doubles_nothing(
    stack_settings: Settings,
) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("RB")
    since = pipe.crm_write_seq()
    tenant = stack_settings.tenant
    ports = (stack_settings.worker_port, stack_settings.worker_port + SECOND_PORT_STEP)
    second: subprocess.Popen[bytes] | None = None
    try:
        pipe.faults(down=True)
        rows = [pipe.insert(f"{tag}-{n:03}", name=f"Customer {n}") for n in range(ROWS)]
        deadline = time.monotonic() + 60
        while ((lanes_at(ports[0]) or {}).get(tenant) or {}).get("queued") != ROWS:
            assert time.monotonic() < deadline, "the commands never reached the lane"
            time.sleep(0.3)
        time.sleep(2)
        before = (lanes_at(ports[0]) or {})[tenant]["oldest_waiting_s"]
        home = stack_settings.home / "worker2"
        home.mkdir(exist_ok=True)
        env = dict(os.environ, ACCT2CRM_HOME=str(home), ACCT2CRM_WORKER_PORT=str(ports[1]),
                   ACCT2CRM_CRM_TOKEN=stack_settings.crm_token.get_secret_value())
        with open(home / "worker.log", "wb") as log:
            second = subprocess.Popen([sys.executable, "-m", "acct2crm.cli", "worker"],
                                      env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
        # the revocation stopped the waiting lane; its commands wait again in the lane
        # of the partition's owner, read again from the ledger (a younger oldest)
        while True:
            held = {p: ((lanes_at(p) or {}).get(tenant) or {}) for p in ports}
            again = [lane for lane in held.values()
                     if lane.get("queued") == ROWS and lane["oldest_waiting_s"] < before]
            if again:
                break
            assert time.monotonic() < deadline + 120, f"no lane took the commands over: {held}"
            time.sleep(0.5)
        pipe.faults(down=False)
        results = pipe.results(rows, ROWS, timeout_s=120, distinct=True)
    finally:
        pipe.faults(down=False)
        if second is not None:
            second.terminate()
            second.wait(60)
        pipe.close()

    assert Counter(r["action"] for r in results) == {"created": ROWS}
    time.sleep(2)  # a write still under way would show in the journal
    kinds = Counter(w["kind"] for w in pipe.crm_writes_since(since) if w["code"].startswith(tag))
    assert dict(kinds) == {"create": ROWS}
    assert len(pipe.crm_all(tag)) == ROWS
