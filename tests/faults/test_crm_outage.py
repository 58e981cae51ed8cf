"""The CRM down for a while as changes keep coming (rule R4): nothing lost, order kept."""

from __future__ import annotations

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
    """The sink waits as long as each 429's ``Retry-After`` says, never hammering.

    The CRM's own counters tell: a sink that ignored ``Retry-After`` (or retried
    at once) would draw many 429s for each call that got through.
    """
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("L")
    before = pipe.crm_stats()
    pipe.faults(rate_limit_per_s=LIMIT_PER_S)
    started = time.monotonic()
    try:
        ids = [pipe.insert(f"{tag}-{i}") for i in range(30)]
        results = pipe.results(ids, 30, timeout_s=180)
        elapsed = time.monotonic() - started
        after = pipe.crm_stats()
    finally:
        pipe.faults(rate_limit_per_s=0)
        pipe.close()
    assert {r["action"] for r in results} == {"created"}
    assert len(pipe.crm_all(tag)) == 30
    calls = after["requests"] - before["requests"]
    limited = after["rate_limited"] - before["rate_limited"]
    served = calls - limited
    assert after["creates"] - before["creates"] == 30
    assert limited > 0, "the limit was never reached: this test proves nothing"
    print(f"rate limit: {calls} calls, {limited} answered 429, {elapsed:.1f}s")
    # at most one 429 for each call served: each lane sleeps out Retry-After
    assert limited <= served, f"{limited} 429s for {served} calls served"
    # no hammering: calls arrived at about the CRM's pace, not many times over
    assert calls / elapsed <= 2.5 * LIMIT_PER_S, f"{calls} calls in {elapsed:.1f}s"
