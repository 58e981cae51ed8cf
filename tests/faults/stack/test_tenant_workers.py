"""Two workers over four tenants in four partitions, one SIGKILLed mid-stream: its
partitions move to the other worker, and every tenant's CRM ends as the rules say,
nothing lost, nothing written twice, each row's writes in commit order.

Runs on the four-partition stack (tests/support/partitioned_stack.py) with four
tenants whose databases land in four different partitions, so each worker owns
two. Once the creates are written, every CRM account goes down and the edits
are committed, so the worker holds its tenants' edits in its lanes (waiting
for their CRM) when it is killed; the accounts come back once the survivor
owns every partition. The killed
worker's supervisor is held (SIGSTOP) so it cannot start it again at once: the
group must give every partition to the survivor, which then finishes the
stream, including the tenants it did not own. Then the supervisor goes on,
starts the worker again, it rejoins and takes partitions back without writing
anything twice.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from acct2crm.settings import Settings
from devstack import workers
from devstack.paths import StackPaths
from devstack.processes import is_alive, read_pid
from devstack.supervisor import read_state
from tests.support.partitioned_stack import (
    PARTITIONS,
    PartitionedStack,
    wait_assignment,
)
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

ROWS = 20
LATENCY_MS = 60


def ours(tenant: str, tag: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["tenant"] == tenant and str(r.get("code") or "").startswith(tag)


def row_of(tenant: str, row: int) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["tenant"] == tenant and r["accounting_id"] == row


def busy_worker(settings: Settings) -> int:
    """The index of a worker that has handled results since it started."""
    for index in (1, 2):
        own = workers.worker_settings(settings, index)
        body = httpx.get(own.status_url, timeout=3.0).json()
        if sum(body.get("counts_since_start", {}).values()) > 0:
            return index
    raise AssertionError("no worker has handled anything")


def edits_held(settings: Settings, index: int, tenants: set[str]) -> bool:
    """Whether worker ``index`` holds commands of one of ``tenants`` waiting for its CRM."""
    own = workers.worker_settings(settings, index)
    body = httpx.get(own.status_url, timeout=3.0).json()
    return any(
        entry.get("state") == "waiting_for_crm" and int(entry.get("queued") or 0) > 0
        for tenant, entry in (body.get("tenants") or {}).items() if tenant in tenants
    )


def child_and_supervisor(settings: Settings, index: int) -> tuple[int, int]:
    """Worker ``index``'s process and its supervisor's."""
    paths = StackPaths.of(settings)
    state = read_state(paths.run_dir / f"{workers.name(index)}-supervisor.json")
    supervisor = read_pid(paths.pid_file(workers.name(index)))
    assert state is not None and state.get("child_pid") and supervisor is not None
    return int(state["child_pid"]), supervisor


@pytest.fixture
def two_workers(partitioned_stack: PartitionedStack) -> Iterator[PartitionedStack]:
    settings = partitioned_stack.settings
    # a fresh start: both workers' counts begin at zero
    workers.stop_extra(settings, echo=lambda _line: None)
    partitioned_stack.cli("up", "--workers", "2", "--crm-fault-injection")
    yield partitioned_stack
    workers.stop_extra(settings, echo=lambda _line: None)


def test_sigkill_moves_partitions_and_loses_and_duplicates_nothing(
    two_workers: PartitionedStack,
) -> None:
    stack = two_workers
    settings = stack.settings
    spread = stack.spread_tenants("kw")
    assert sorted(spread.values()) == list(range(PARTITIONS))  # one tenant per partition
    for tenant in spread:
        stack.cli("tenants", "add", tenant)
    listed = json.loads(stack.cli("tenants", "list", "--json"))
    pipes = {
        t: Pipeline.start(settings.model_copy(update={
            "pg_database": f"accounting_{t}", "crm_token": SecretStr(listed[t]["crm_token"])}))
        for t in spread
    }
    admin = Pipeline.start(settings)
    before = wait_assignment(settings, members=2)
    assert all(before.values()), f"a worker owns no partition: {before}"

    tag = unique_tag("W")
    since = admin.crm_write_seq()
    admin.faults(latency_ms=LATENCY_MS)
    ids: dict[str, list[int]] = {}
    final: dict[str, dict[int, str]] = {t: {} for t in spread}
    held: int | None = None
    try:
        for n in range(ROWS):  # tenants interleaved, commit by commit
            for t, p in pipes.items():
                ids.setdefault(t, []).append(p.insert(f"{tag}-{n:03}", name=f"C {n}"))
        deadline = time.monotonic() + 120
        while len([w for w in admin.crm_writes_since(since) if w["code"].startswith(tag)]) < (
                ROWS * len(pipes)):
            assert time.monotonic() < deadline, "the workers never wrote the creates"
            time.sleep(0.05)
        # every CRM account down, then the edits: each worker holds its tenants' commands
        # in its lanes at the kill, so the moved tenants' edits are surely the survivor's
        admin.faults(down=True)
        for n in range(ROWS):
            for t, p in pipes.items():
                row = ids[t][n]
                if n % 2:
                    final[t][row] = f"{tag}-R{n:03}"
                    p.update(row, code=final[t][row])
                else:
                    final[t][row] = f"{tag}-{n:03}"
                    p.update(row, name=f"Edited {n}")
        victim = busy_worker(settings)
        child, supervisor = child_and_supervisor(settings, victim)
        deadline = time.monotonic() + 60
        while not edits_held(settings, victim, set(spread)):
            assert time.monotonic() < deadline, "no worker showed a tenant waiting for its CRM"
            time.sleep(0.2)
        os.kill(supervisor, signal.SIGSTOP)  # it must not start the worker again yet
        held = supervisor
        os.kill(child, signal.SIGKILL)
        while is_alive(child):
            time.sleep(0.05)
        killed_at = admin.crm_write_seq()  # every later write is the survivor's
        killed = time.monotonic()

        # the group gives every partition to the survivor, which held only some
        after = wait_assignment(settings, members=1)
        print(f"every partition held by the survivor {time.monotonic() - killed:.1f} s "
              "after the SIGKILL")  # a figure for the report (pytest -s), not an assertion
        admin.faults(down=False)
        [(survivor, owned)] = after.items()
        assert survivor in before and before[survivor] < owned == set(range(PARTITIONS))
        moved = set(range(PARTITIONS)) - before[survivor]
        moved_tenants = {t for t, p in spread.items() if p in moved}

        for t, p in pipes.items():  # the survivor alone finishes every tenant's stream
            results = p.results_where(ours(t, tag), 2 * ROWS, timeout_s=240)
            done = {(r["accounting_id"], r["source"]["lsn"]) for r in results}
            assert len(done) >= 2 * ROWS, f"tenant {t}: {len(done)} of {2 * ROWS} changes"
        late = {w["account"] for w in admin.crm_writes_since(killed_at)
                if w["code"].startswith(tag)}
        assert late & moved_tenants, (
            f"the survivor wrote for none of the moved tenants {moved_tenants}: {late}")

        os.kill(supervisor, signal.SIGCONT)  # the worker starts again and rejoins
        held = None
        again = wait_assignment(settings, members=2)
        assert all(again.values()), f"the restarted worker took no partition: {again}"
        # one more change per tenant, after everything before it in its partition
        last = {t: p.insert(f"{tag}-Z", name="Last") for t, p in pipes.items()}
        for t, p in pipes.items():
            found = p.results_where(row_of(t, last[t]), 1, timeout_s=180)
            assert found and found[0]["action"] == "created", f"{t}: {found}"
    finally:
        if held is not None:
            os.kill(held, signal.SIGCONT)
        admin.faults(latency_ms=0, down=False)

    writes = [w for w in admin.crm_writes_since(since) if w["code"].startswith(tag)]
    for t, p in pipes.items():
        mine = [w for w in writes if w["account"] == t and w["code"] != f"{tag}-Z"]
        kinds = Counter(w["kind"] for w in mine)
        # nothing lost, nothing written twice
        assert (kinds["create"], kinds["update"]) == (ROWS, ROWS), f"{t}: {dict(kinds)}"
        # every write that depends on another in commit order: each row's create before
        # its update. The rows' codes never meet, so their writes are independent, and
        # the sink may apply them side by side: after the outage each code lane retries
        # on its own backoff, so the CRM can see them in any order across rows
        per_row: dict[str, list[str]] = {}
        for w in mine:
            per_row.setdefault(w["external_ref"], []).append(w["kind"])
        assert per_row == {f"{t}:{row}": ["create", "update"] for row in ids[t]}, t
        # the creates were all written before the CRM went down, so before any update
        kinds_in_order = [w["kind"] for w in mine]
        assert kinds_in_order == ["create"] * ROWS + ["update"] * ROWS, t
        records = {r["external_ref"]: r for r in p.crm_all(tag)}
        assert len(records) == ROWS + 1
        for row, code in final[t].items():
            assert records[f"{t}:{row}"]["code"] == code
        p.close()
    admin.close()
