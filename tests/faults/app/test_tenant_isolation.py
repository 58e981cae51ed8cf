"""One tenant's CRM down for 30 s never delays another tenant sharing its partition.

On the real stack: two tenants made with ``tenants add``, in one partition of
the change and command topics. Tenant B's latency (commit to CRM write) is
measured with A healthy, then while A's CRM account is down: B's changes
reach B's CRM while A is still down, A's changes wait in order (``status``
shows A waiting, with the reason) and are written once A's CRM is back, each
exactly once.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import pytest

from acct2crm.settings import Settings
from acct2crm.topic_partitions import partition_of
from tests.support.sync import Pipeline, unique_tag
from tests.support.tenant_cli import cli, tenant_pipe

pytestmark = pytest.mark.integration

DOWN_S = 30.0
SAMPLES = 5
# B's changes while A is down must not wait for A: far below A's 30 s outage
BOUND_S = 12.0


def same_partition_pair(partitions: int) -> tuple[str, str]:
    """Two tenant ids whose databases share one partition (isolation within a partition)."""
    first = "iso_a"
    home = partition_of(f"accounting_{first}", partitions)
    for n in range(1000):
        other = f"iso_b{n}"
        if partition_of(f"accounting_{other}", partitions) == home:
            return first, other
    raise AssertionError("no tenant id shares iso_a's partition")


def written_at(pipe: Pipeline, since: int, account: str, code: str,
               timeout_s: float = 90.0) -> float:
    """When the CRM accepted the write of ``code`` into ``account`` (epoch seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [w for w in pipe.crm_writes_since(since)
                 if w["account"] == account and w["code"] == code]
        if found:
            return float(found[0]["at"])
        assert time.monotonic() < deadline, f"{code} never reached {account}'s CRM"
        time.sleep(0.1)


def latencies(pipe: Pipeline, p: Pipeline, tenant: str, tag: str,
              timeout_s: float = 90.0) -> list[float]:
    """Commit-to-CRM-write seconds of SAMPLES changes of ``tenant``, one after another."""
    since = pipe.crm_write_seq()
    out = []
    for n in range(SAMPLES):
        code = f"{tag}-{n}"
        started = time.time()
        p.insert(code)
        out.append(written_at(pipe, since, tenant, code, timeout_s) - started)
    return out


def tenant_sync(tenant: str) -> dict[str, Any]:
    return dict(json.loads(cli("status", "--json"))["tenants"][tenant]["sync"])


def test_one_tenants_crm_down_never_delays_another(
    stack_settings: Settings, pipe: Pipeline
) -> None:
    a, b = same_partition_pair(stack_settings.change_partitions)
    for tenant in (a, b):
        cli("tenants", "add", tenant)
    pa, pb = tenant_pipe(stack_settings, a), tenant_pipe(stack_settings, b)
    tag = unique_tag("I")
    for tenant, p in ((a, pa), (b, pb)):  # both tenants' sinks are made and seeded
        since = pipe.crm_write_seq()
        p.insert(f"{tag}-W{tenant}")
        written_at(pipe, since, tenant, f"{tag}-W{tenant}", timeout_s=180)

    healthy = latencies(pipe, pb, b, f"{tag}-H")

    since = pipe.crm_write_seq()
    pipe.faults(account=a, down=True)
    went_down = time.monotonic()
    try:
        row = pa.insert(f"{tag}-A1")
        for step in ("A2", "A3"):  # renames: the order of A's writes matters
            pa.update(row, code=f"{tag}-{step}")
        deadline = time.monotonic() + 25
        while (sync := tenant_sync(a))["state"] != "waiting_for_crm":
            assert time.monotonic() < deadline, f"status never showed {a} waiting: {sync}"
            time.sleep(0.5)
        assert sync["waiting_reason"]  # why it waits, for the operator
        assert sync.get("queued", 0) >= 1  # its commands are held in its lane, not lost

        down = latencies(pipe, pb, b, f"{tag}-D", timeout_s=BOUND_S)  # not waiting for A
        b_done = time.time()
        assert tenant_sync(a)["state"] == "waiting_for_crm"  # A still waits, B went on
        assert not [w for w in pipe.crm_writes_since(since) if w["account"] == a]
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - went_down)))
    finally:
        pipe.faults(account=a, down=False)
    back = time.time()

    results = pipe.results_where(
        lambda r: r["tenant"] == a and r["accounting_id"] == row, 3, timeout_s=120)
    assert [(r["action"], r["code"]) for r in results] == [
        ("created", f"{tag}-A1"), ("updated", f"{tag}-A2"), ("updated", f"{tag}-A3")]
    time.sleep(2)  # anything written twice would show up by now
    writes = pipe.crm_writes_since(since)
    a_writes = [(w["kind"], w["code"]) for w in writes if w["account"] == a]
    assert a_writes == [("create", f"{tag}-A1"), ("update", f"{tag}-A2"),
                        ("update", f"{tag}-A3")]  # in order, once each, only once A was back
    assert all(w["at"] >= back - 1 for w in writes if w["account"] == a)
    b_codes = [w["code"] for w in writes if w["account"] == b]
    assert b_codes == [f"{tag}-D-{n}" for n in range(SAMPLES)]  # each once
    assert b_done < back  # every B change was written while A's CRM was down

    ratio = statistics.median(down) / statistics.median(healthy)
    print(f"tenant B commit-to-CRM latency: A healthy median {statistics.median(healthy):.3f} s "
          f"{[round(x, 3) for x in healthy]}; A down median {statistics.median(down):.3f} s "
          f"{[round(x, 3) for x in down]}; ratio {ratio:.2f}")
    assert max(down) < BOUND_S, f"B waited while A was down: {down} (healthy: {healthy})"
    pa.close()
    pb.close()
