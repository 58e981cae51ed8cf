"""Pause and resume a tenant: its changes wait in Kafka, visibly, then apply in order."""

from __future__ import annotations

import json
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


def cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout


def test_a_paused_tenant_waits_then_applies_in_order(stack_settings: Settings) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("P")
    tenant = stack_settings.tenant
    since = pipe.crm_write_seq()
    assert "paused" in cli("pause", tenant)
    try:
        row = pipe.insert(f"{tag}-A")
        for step in ("B", "C"):  # renames: the order of the writes matters
            pipe.update(row, code=f"{tag}-{step}")
        deadline = time.monotonic() + 60
        while worker_status(stack_settings)["state"] != "paused":
            assert time.monotonic() < deadline, "the worker never showed it was paused"
            time.sleep(0.5)
        time.sleep(5)  # long enough for the changes to reach the CRM if they could
        assert pipe.results_now([row], quiet_s=1.0) == []
        assert [w for w in pipe.crm_writes_since(since) if tag in (w.get("code") or "")] == []
        report = json.loads(cli("status", "--json"))
        assert tenant in report["sync"]["paused"]
        assert report["sync"]["state"] == "paused"
        assert report["lag"] > 0  # the changes are waiting, not lost
        assert f"PAUSED tenant {tenant}" in cli("status")
    finally:
        assert "resumed" in cli("resume", tenant)
    results = pipe.results([row], 3, timeout_s=120)
    assert [(r["action"], r["code"]) for r in results] == [
        ("created", f"{tag}-A"), ("updated", f"{tag}-B"), ("updated", f"{tag}-C"),
    ]
    [crm_id] = {r["crm_id"] for r in results}
    writes = [w for w in pipe.crm_writes_since(since) if w["id"] == crm_id]
    assert [(w["kind"], w["code"]) for w in writes] == [
        ("create", f"{tag}-A"), ("update", f"{tag}-B"), ("update", f"{tag}-C"),
    ]
    assert worker_status(stack_settings)["state"] == "running"
