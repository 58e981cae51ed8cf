"""The CRM down for a while as changes keep coming (rule R4): nothing lost, order kept."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from acct2crm.settings import Settings
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration


def worker_status(settings: Settings) -> dict[str, Any]:
    return dict(httpx.get(settings.status_url, timeout=5).json())


def test_changes_wait_while_the_crm_is_down_and_apply_in_order(
    stack_settings: Settings,
) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("O")
    since = pipe.crm_write_seq()
    pipe.faults(down=True)
    try:
        row = pipe.insert(f"{tag}-A")
        for step in ("B", "C", "D"):  # a chain of renames: order matters
            pipe.update(row, code=f"{tag}-{step}")
        others = [pipe.insert(f"{tag}-N{i}") for i in range(10)]
        deadline = time.monotonic() + 60
        while worker_status(stack_settings)["state"] != "waiting_for_crm":
            assert time.monotonic() < deadline, "the worker never showed it was waiting"
            time.sleep(0.5)
        time.sleep(3)
        assert "503" in (worker_status(stack_settings)["waiting_reason"] or "")
        shown = subprocess.run(
            [sys.executable, "-m", "acct2crm.cli", "status"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
        assert "WAITING for the CRM" in shown  # the operator sees it without reading logs
        checked = subprocess.run(
            [sys.executable, "-m", "acct2crm.cli", "status", "--check"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert checked.returncode == 1, checked.stdout + checked.stderr  # a monitor sees it
        assert "waits for its CRM: " in checked.stdout and "503" in checked.stdout
    finally:
        pipe.faults(down=False)
    results = pipe.results([row, *others], 14, timeout_s=180)
    # results in the order the worker published them (topic offsets, not re-sorted)
    mine = [r for r in results if r["accounting_id"] == row]
    assert [r["action"] for r in mine] == ["created", "updated", "updated", "updated"]
    assert [r["code"] for r in mine] == [f"{tag}-{s}" for s in "ABCD"]
    # and the CRM took the row's writes in that order, each once, after the outage
    [crm_id] = {r["crm_id"] for r in mine}
    writes = [w for w in pipe.crm_writes_since(since) if w["id"] == crm_id]
    assert [(w["kind"], w["code"]) for w in writes] == [
        ("create", f"{tag}-A"), ("update", f"{tag}-B"), ("update", f"{tag}-C"),
        ("update", f"{tag}-D"),
    ]
    crm = {r["code"] for r in pipe.crm_all(tag)}
    assert crm == {f"{tag}-D", *(f"{tag}-N{i}" for i in range(10))}
    deadline = time.monotonic() + 30
    while worker_status(stack_settings)["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    pipe.close()


LIMIT_PER_S = 5


def test_rate_limited_crm_is_honoured_and_everything_arrives(stack_settings: Settings) -> None:
    """Every 429's ``Retry-After`` is slept out before the same call comes again.

    The CRM notes each call it gets (``/admin/calls``). Edits of existing rows
    make calls that name their row (``?code=...``, ``/api/customers/{id}``), so
    the gap a lane left after each 429 can be measured on the CRM's side: a
    sink that retried sooner than told, or at once, shows up there.
    """
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("L")
    ids = [pipe.insert(f"{tag}-{i}") for i in range(30)]
    pipe.results(ids, 30, timeout_s=120)
    before = pipe.crm_stats()
    since = pipe.crm_call_seq()
    pipe.faults(rate_limit_per_s=LIMIT_PER_S)
    try:
        for row in ids:
            pipe.update(row, phone="0912345678")
            # one commit at a time, ~10/s: the change and command agents batch what
            # arrives together, and a single batch call would never meet the limit
            time.sleep(0.1)
        results = pipe.results(ids, 60, timeout_s=180)
        after = pipe.crm_stats()
        calls = pipe.crm_calls_since(since)
    finally:
        pipe.faults(rate_limit_per_s=0)
        pipe.close()
    assert [r["action"] for r in results].count("updated") == 30
    assert {r["phone"] for r in pipe.crm_all(tag)} == {"0912345678"}
    refused = [c for c in calls if c["status"] == 429]
    print(f"rate limit: {len(calls)} calls, {len(refused)} answered 429")
    assert refused, "the limit was never reached: this test proves nothing"
    assert after["rate_limited"] - before["rate_limited"] == len(refused)
    assert after["updates"] - before["updates"] == 30  # one write per edit, no more

    by_target: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        by_target.setdefault(f"{call['method']} {call['target']}", []).append(call)
    too_soon = [
        (target, round(nxt["at"] - call["at"], 3), call["retry_after"])
        for target, seen in by_target.items()
        for call, nxt in itertools.pairwise(seen)
        if call["status"] == 429 and nxt["at"] - call["at"] < float(call["retry_after"]) - 0.05
    ]
    assert too_soon == [], f"retried before Retry-After had passed: {too_soon[:5]}"
