"""Seeding runs only while this worker holds the partition and its tables are restored."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from acct2crm.app.seeding_task import check_seeding
from acct2crm.sink.pacing import RateLimiter, RetryPolicy
from acct2crm.sink.seeding import Seeder
from tests.unit.sink.test_seeding import StopsAt

TOPIC = "acct2crm.commands"


def fake_app(*, restored: bool, assigned: bool, rebalancing: bool = False) -> Any:
    completed = asyncio.Event()
    if restored:
        completed.set()
    return SimpleNamespace(
        rebalancing=rebalancing,
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
        consumer=SimpleNamespace(assignment=lambda: {TP(TOPIC, 0)} if assigned else set()),
    )


async def test_seeding_waits_for_the_tables_and_the_partition_and_stops_without_it() -> None:
    crm = StopsAt(hang_at=2)
    for i in range(300):
        crm.add(f"C{i:03}")
    seeder = Seeder("default", crm, {}, pace=RateLimiter(0), retry=RetryPolicy(), page_size=100)

    await check_seeding(fake_app(restored=False, assigned=True), seeder, TOPIC)
    await check_seeding(fake_app(restored=True, assigned=False), seeder, TOPIC)
    await check_seeding(fake_app(restored=True, assigned=True, rebalancing=True), seeder, TOPIC)
    assert not seeder.running and crm.pages_asked() == []

    await check_seeding(fake_app(restored=True, assigned=True), seeder, TOPIC)
    await asyncio.wait_for(crm.reached.wait(), 5)
    assert seeder.running and crm.pages_asked() == [1, 2]

    await check_seeding(fake_app(restored=True, assigned=False), seeder, TOPIC)  # moved away
    assert not seeder.running and seeder.status()["state"] == "paused"
    assert seeder.status()["next_page"] == 2


async def test_a_failing_check_is_reported_not_raised() -> None:
    seeder = Seeder("default", StopsAt(hang_at=1), {}, pace=RateLimiter(0),
                    retry=RetryPolicy())
    broken = SimpleNamespace(rebalancing=False)  # no tables: the check itself fails
    await check_seeding(broken, seeder, TOPIC)
    assert "could not check" in (seeder.status()["reason"] or "")
