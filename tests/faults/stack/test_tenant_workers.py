"""Two workers over four tenants, the busy one SIGKILLed mid-stream: every tenant's CRM
ends as the rules say, nothing lost, nothing written twice, each row's writes in order.

The CRM is slowed down so writes are in flight at the kill. The worker that is
handling the stream (the one whose status page counts results) is killed; the
consumer group gives its partitions to the other worker, and its supervisor
starts it again, so it rejoins the group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from acct2crm.settings import Settings
from devstack import workers
from devstack.paths import StackPaths
from devstack.supervisor import read_state
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

TENANTS = ("w1", "w2", "w3", "w4")
ROWS = 20
LATENCY_MS = 60


def cli(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 0, f"acct2crm {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def ours(tenant: str, tag: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["tenant"] == tenant and str(r.get("code") or "").startswith(tag)


def busy_worker_child(settings: Settings) -> int:
    """The worker process (not its supervisor) that has handled results since it started."""
    paths = StackPaths.of(settings)
    for index in (1, 2):
        own = workers.worker_settings(settings, index)
        body = httpx.get(own.status_url, timeout=3.0).json()
        if sum(body.get("counts_since_start", {}).values()) > 0:
            state = read_state(paths.run_dir / f"{workers.name(index)}-supervisor.json")
            assert state is not None and state.get("child_pid")
            return int(state["child_pid"])
    raise AssertionError("no worker has handled anything")


def test_two_workers_four_tenants_sigkill_loses_and_duplicates_nothing(
    stack_settings: Settings, pipe: Pipeline
) -> None:
    for tenant in TENANTS:
        cli("tenants", "add", tenant)
    listed = json.loads(cli("tenants", "list", "--json"))
    pipes = {
        t: Pipeline.start(stack_settings.model_copy(update={
            "pg_database": f"accounting_{t}", "crm_token": SecretStr(listed[t]["crm_token"])}))
        for t in TENANTS
    }
    # a fresh start: both workers' counts begin at zero
    workers.stop_extra(stack_settings, echo=lambda _line: None)
    cli("up", "--workers", "2", "--crm-fault-injection")
    tag = unique_tag("W")
    since = pipe.crm_write_seq()
    pipe.faults(latency_ms=LATENCY_MS)
    ids: dict[str, list[int]] = {}
    final: dict[str, dict[int, str]] = {t: {} for t in TENANTS}
    try:
        for n in range(ROWS):  # tenants interleaved, commit by commit
            for t, p in pipes.items():
                ids.setdefault(t, []).append(p.insert(f"{tag}-{n:03}", name=f"C {n}"))
        for n in range(ROWS):
            for t, p in pipes.items():
                row = ids[t][n]
                if n % 2:
                    final[t][row] = f"{tag}-R{n:03}"
                    p.update(row, code=final[t][row])
                else:
                    final[t][row] = f"{tag}-{n:03}"
                    p.update(row, name=f"Edited {n}")
        deadline = time.monotonic() + 120
        while len([w for w in pipe.crm_writes_since(since) if w["code"].startswith(tag)]) < ROWS:
            assert time.monotonic() < deadline, "the workers never started writing"
            time.sleep(0.05)
        os.kill(busy_worker_child(stack_settings), signal.SIGKILL)
        for t, p in pipes.items():
            results = p.results_where(ours(t, tag), 2 * ROWS, timeout_s=240)
            done = {(r["accounting_id"], r["source"]["lsn"]) for r in results}
            assert len(done) >= 2 * ROWS, f"tenant {t}: {len(done)} of {2 * ROWS} changes"
    finally:
        pipe.faults(latency_ms=0)
        workers.stop_extra(stack_settings, echo=lambda _line: None)

    writes = [w for w in pipe.crm_writes_since(since) if w["code"].startswith(tag)]
    for t, p in pipes.items():
        mine = [w for w in writes if w["account"] == t]
        kinds = Counter(w["kind"] for w in mine)
        # nothing lost, nothing written twice
        assert (kinds["create"], kinds["update"]) == (ROWS, ROWS), f"{t}: {dict(kinds)}"
        per_row: dict[str, list[str]] = {}
        for w in mine:
            per_row.setdefault(w["external_ref"], []).append(w["kind"])
        # each row: its create, then its update (commit order per tenant)
        assert set(map(tuple, per_row.values())) == {("create", "update")}
        records = {r["external_ref"]: r for r in p.crm_all(tag)}
        assert len(records) == ROWS
        for row, code in final[t].items():
            assert records[f"{t}:{row}"]["code"] == code
        p.close()
