"""``up --workers N`` on a stack whose change topic has four partitions (one tenant in
each): N worker processes in the one consumer group, each owning some partitions, shown
by ``status``, every tenant's connector too; starting them again changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from devstack import workers
from devstack.processes import is_alive
from tests.support.partitioned_stack import PARTITIONS, PartitionedStack, wait_assignment

pytestmark = pytest.mark.integration


@pytest.fixture
def two_workers(partitioned_stack: PartitionedStack) -> Iterator[PartitionedStack]:
    yield partitioned_stack
    workers.stop_extra(partitioned_stack.settings, echo=lambda _line: None)


def test_up_workers_twice_is_idempotent_and_status_shows_them(
    two_workers: PartitionedStack,
) -> None:
    stack = two_workers
    spread = stack.spread_tenants("kw")
    for tenant in spread:
        stack.cli("tenants", "add", tenant)
    stack.cli("up", "--workers", "2", "--crm-fault-injection")
    first = json.loads(stack.cli("status", "--json"))
    again = stack.cli("up", "--workers", "2", "--crm-fault-injection")
    assert "worker-2: already running" in again
    second = json.loads(stack.cli("status", "--json"))
    assert len(first["workers"]) == 2
    assert first["workers"] == second["workers"]
    assert [w["state"] for w in second["workers"]] == ["running", "running"]
    pids = [w["pid"] for w in second["workers"]]
    assert len(set(pids)) == 2 and all(pid is not None and is_alive(pid) for pid in pids)
    assert second["services"]["worker"]["pid"] == pids[0]
    assert {"default", *spread} <= set(second["tenants"])
    default = second["tenants"]["default"]
    assert set(default) == {"lag", "counts", "sync"}
    assert set(default["sync"]) == {"state", "waiting_reason"}
    assert isinstance(default["lag"], int)
    # the group spreads the four partitions over both workers
    owned = wait_assignment(stack.settings, members=2)
    assert sorted(len(held) for held in owned.values()) == [2, 2], owned
    # every tenant's connector, the default tenant's first (and still as `connector`)
    connectors = second["connectors"]
    assert connectors[0]["tenant"] == "default"
    assert {"default", *spread} <= {c["tenant"] for c in connectors}
    assert connectors[0]["name"] == second["connector"]["name"]
    assert len({c["name"] for c in connectors}) == len(connectors)
    assert all(c["state"] == "RUNNING" for c in connectors), connectors
    text = stack.cli("status")
    for tenant in spread:
        assert f"connector {tenant} RUNNING" in text
    # the worker's page (the cockpit) shows a connector section per tenant too
    page = httpx.get(stack.settings.status_url.removesuffix("status"), timeout=10).text
    for tenant in ("default", *spread):
        assert f'data-state="RUNNING" data-tenant="{tenant}"><h2>Connector' in page, tenant
    assert len(set().union(*owned.values())) == PARTITIONS
