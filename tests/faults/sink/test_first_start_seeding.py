"""A first start against a big, rate-limited CRM: changes apply while the table seeds.

A stack of the test's own (a worker with an empty CRM-code table) meets a
reference CRM holding 50,000 customers and answering at most 5 calls a second.
Seeding asks 100 customers a page (501 pages: well over a minute at that
rate), so a change that applies within a minute proves it did not wait for
seeding. Then the worker is killed mid-seed (its supervisor starts it again):
the CRM's call journal must show the new worker asking the page it had
reached, not page 1, and seeding must end with every customer listed once.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from acct2crm.settings import Settings
from devstack import lifecycle
from devstack.paths import StackPaths
from devstack.python_services import supervisor_state_file
from tests.conftest import TEST_HOME
from tests.support.own_stack import OwnStack
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

CUSTOMERS = 50_000
LIMIT_PER_S = 5
PAGE_SIZE = 100
KILL_AT_PAGE = 150
PAGE = re.compile(r"^/api/customers\?(?=.*\bpage_size=)(?=.*\bpage=(\d+)\b)")


def fill_crm(pipe: Pipeline, tag: str) -> None:
    """50,000 sales records through the batch API (100 a call, a few calls at once)."""
    def batch(start: int) -> None:
        operations = [
            {"op": "create", "fields": {"code": f"{tag}-{n:06}", "name": f"Sales {n}"}}
            for n in range(start, min(start + 100, CUSTOMERS))
        ]
        with pipe.crm() as crm:
            reply = crm.post("/api/customers/batch", json={"operations": operations}, timeout=60)
            assert reply.status_code == 200, reply.text
            assert all(r["status"] == 201 for r in reply.json()["results"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(batch, range(0, CUSTOMERS, 100)))


def pages(calls: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(page, status) of each list call, in the order the CRM got them."""
    found = []
    for call in calls:
        match = PAGE.match(call["target"])
        if call["method"] == "GET" and match:
            found.append((int(match.group(1)), int(call["status"])))
    return found


def worker_status(settings: Settings) -> dict[str, Any]:
    try:
        return dict(httpx.get(settings.status_url, timeout=5).json())
    except (httpx.HTTPError, ValueError):
        return {}


def worker_child_pid(settings: Settings) -> int:
    state = json.loads(supervisor_state_file(StackPaths.of(settings)).read_text())
    return int(state["child_pid"])


@pytest.mark.parametrize("own_pace", [LIMIT_PER_S, 0], ids=["paced", "unpaced"])
def test_first_start_seeds_beside_the_changes_and_resumes_after_a_kill(own_pace: int) -> None:
    """``own_pace``: the worker's own ``crm_rate_limit_per_s`` (0: only the CRM's 429s)."""
    own = OwnStack(TEST_HOME / "first start seeding")
    settings = Settings(home=own.home, **own.ports, crm_rate_limit_per_s=own_pace,
                        crm_seed_page_size=PAGE_SIZE)
    tag = unique_tag("S")
    pipe: Pipeline | None = None
    try:
        lifecycle.up(settings, crm_fault_injection=True, with_worker=False, echo=lambda _: None)
        pipe = Pipeline.start(settings)
        began = time.monotonic()
        fill_crm(pipe, tag)
        print(f"CRM filled with {CUSTOMERS} customers in {time.monotonic() - began:.0f}s")
        pipe.faults(rate_limit_per_s=LIMIT_PER_S)
        since = pipe.crm_call_seq()

        lifecycle.up(settings, crm_fault_injection=True, echo=lambda _: None)  # the worker
        started = time.monotonic()
        row = pipe.insert(f"{tag}-NEW")
        [result] = pipe.results([row], 1, timeout_s=60)
        took = time.monotonic() - started
        seeding = worker_status(settings).get("seeding") or {}
        print(f"first change applied {took:.1f}s after the worker started; seeding: {seeding}")
        assert result["action"] == "created"
        assert seeding.get("state") in ("seeding", "waiting_for_crm"), seeding
        assert not worker_status(settings)["seeded"]
        shown = own.cli("status").stdout
        assert "seeding" in shown and "changes apply meanwhile" in shown, shown

        deadline = time.monotonic() + 240
        while max((p for p, s in pages(pipe.crm_calls_since(since)) if s == 200),
                  default=0) < KILL_AT_PAGE:
            assert time.monotonic() < deadline, "seeding never reached the page to kill at"
            time.sleep(0.5)
        os.kill(worker_child_pid(settings), signal.SIGKILL)
        time.sleep(1)  # calls already sent are journaled
        killed_at = pipe.crm_call_seq()
        before = pages(pipe.crm_calls_since(since))
        reached = max(p for p, s in before if s == 200)

        deadline = time.monotonic() + 300
        while not worker_status(settings).get("seeded"):
            assert time.monotonic() < deadline, f"seeding never ended: {worker_status(settings)}"
            time.sleep(1)
        after = pages(pipe.crm_calls_since(killed_at))
        final = worker_status(settings)["seeding"]
    finally:
        if pipe is not None:
            pipe.close()
        own.clean_up()

    asked_after = [p for p, _ in after]
    print(f"killed having listed page {reached}; the new worker asked pages "
          f"{asked_after[:3]}...{asked_after[-1]}; 429s before/after: "
          f"{sum(s == 429 for _, s in before)}/{sum(s == 429 for _, s in after)}; {final}")
    assert 1 not in asked_after, "the restarted worker listed the CRM from page 1 again"
    # it goes on from the page it reached (a page may be read again, none skipped)
    assert reached - 5 <= asked_after[0] <= reached + 1
    answered = sorted({p for p, s in before + after if s == 200})
    last = (CUSTOMERS + 1 + PAGE_SIZE - 1) // PAGE_SIZE  # the sales records and the new row's
    assert answered == list(range(1, last + 1))
    assert final["resumed_from_page"] == asked_after[0]
    assert (final["pages"], final["records"]) == (last, CUSTOMERS + 1)
    # a 429 was waited out and the same page asked again: never a restart
    for (page, status), (nxt, _) in itertools.pairwise(after):
        assert nxt == (page if status == 429 else page + 1)
