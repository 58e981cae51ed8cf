"""Replay on a change topic with four partitions (one tenant in each): the dry run and
the rewind cover every partition, every tenant's changes are read again as unchanged,
and no CRM account receives a write."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from acct2crm.progress import lag
from devstack import workers
from tests.support.partitioned_stack import PARTITIONS, PartitionedStack
from tests.support.sync import Pipeline, unique_tag, wait_commit_at_end

pytestmark = pytest.mark.integration


def _replayed(tenant: str, row: int) -> Callable[[dict[str, Any]], bool]:
    return lambda r: (r["tenant"] == tenant and r["accounting_id"] == row
                      and "replay" in r["reason"])


def _ours(tenant: str, tag: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["tenant"] == tenant and str(r.get("code") or "").startswith(tag)


def _caught_up(stack: PartitionedStack, what: str) -> None:
    deadline = time.monotonic() + 180
    while lag(stack.settings) != 0:
        assert time.monotonic() < deadline, f"the worker did not catch up {what}"
        time.sleep(0.5)


def test_replay_from_offset_zero_covers_every_partition_and_writes_nothing(
    partitioned_stack: PartitionedStack,
) -> None:
    stack = partitioned_stack
    settings = stack.settings
    workers.stop_extra(settings, echo=lambda _line: None)  # one worker: rewind needs it stopped
    spread = stack.spread_tenants("kw")
    assert sorted(spread.values()) == list(range(PARTITIONS))
    for tenant in spread:
        stack.cli("tenants", "add", tenant)
    listed = json.loads(stack.cli("tenants", "list", "--json"))
    admin = Pipeline.start(settings)
    tag = unique_tag("RP")
    rows = {}
    for tenant in spread:
        p = Pipeline.start(settings.model_copy(update={
            "pg_database": f"accounting_{tenant}",
            "crm_token": SecretStr(listed[tenant]["crm_token"])}))
        rows[tenant] = p.insert(f"{tag}-A")
        p.update(rows[tenant], code=f"{tag}-B")
        p.close()
    for tenant in spread:
        handled = admin.results_where(_ours(tenant, tag), 2, timeout_s=180)
        assert len(handled) >= 2, tenant
    _caught_up(stack, "before the replay")
    writes = admin.crm_writes()  # every account's

    preview = stack.cli("replay", "--from-offset", "0", "--dry-run")
    assert "(partition 3)" in preview  # every partition is read, each from its offset 0
    for tenant, partition in spread.items():
        shown = [line for line in preview.splitlines() if f"{tag}-B" in line]
        assert any(line.split("│")[1].strip() == str(partition) for line in shown), (
            tenant, shown)

    done = stack.cli("replay", "--from-offset", "0", "--wait")  # follows every partition
    assert "rewound to offsets 0 (partition 0), 0 (partition 1), 0 (partition 2), " \
        "0 (partition 3)" in done
    for tenant in spread:  # every tenant's changes were read again, in every partition ...
        again = admin.results_where(_replayed(tenant, rows[tenant]), 2, timeout_s=240)
        assert [r["action"] for r in again] == ["unchanged", "unchanged"], tenant
    _caught_up(stack, "after the replay")
    wait_commit_at_end(settings)  # the group's own commit, in every partition, follows
    # ... and no CRM account received a write
    assert admin.crm_writes() == writes
    admin.close()
