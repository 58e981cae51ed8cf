"""Seeding the CRM-code table: page by page, paced, resumable, beside the change path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from acct2crm import metrics
from acct2crm.app.pipeline import ChangeRouter, CommandApplier
from acct2crm.model.message import Message
from acct2crm.rules.codes import code_key
from acct2crm.scope_file import ScopeWatcher
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import RateLimiter, RetryPolicy
from acct2crm.sink.ports import CrmPage
from acct2crm.sink.seeding import PROGRESS, Seeder, SeedMark, SinkFirstPace
from acct2crm.status_report import seeding_line
from tests.support.changes import row
from tests.support.memory_crm import MemoryCrm
from tests.unit.app.test_pipeline import Sent, change_message, envelope

TENANT = "default"


def crm_with(n: int, **options: Any) -> MemoryCrm:
    crm = MemoryCrm(**options)
    for i in range(n):
        crm.add(f"C{i:04}")
    return crm


class Sleeps:
    """A sleep that records what it was asked and returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.asked.append(delay)
        await asyncio.sleep(0)


class CountingPace(RateLimiter):
    def __init__(self) -> None:
        super().__init__(0)
        self.waits = 0

    async def wait(self) -> None:
        self.waits += 1


def seeder_for(crm: Any, table: dict[str, Any], *, page_size: int = 100,
               pace: RateLimiter | None = None, sleep: Sleeps | None = None,
               clock: Any = None) -> Seeder:
    options: dict[str, Any] = {}
    if clock is not None:
        options["clock"] = clock
    return Seeder(TENANT, crm, table, pace=pace or RateLimiter(0), retry=RetryPolicy(0.01, 0.05),
                  page_size=page_size, sleep=sleep or Sleeps(), **options)


def every_code_known(crm: MemoryCrm, cache: CodeCache) -> bool:
    return all(cache.get(code_key(r.code)) == r for r in crm.records.values())


async def test_a_refused_page_is_asked_again_after_retry_after_never_from_page_one() -> None:
    crm = crm_with(1000, refuse_pages={4: (2, 3.0)}, tells_total=True)
    pace, sleeps = CountingPace(), Sleeps()
    table: dict[str, Any] = {}
    seeder = seeder_for(crm, table, pace=pace, sleep=sleeps)
    await seeder.run()
    assert crm.pages_asked() == [1, 2, 3, 4, 4, 4, 5, 6, 7, 8, 9, 10]
    # the CRM's Retry-After, per page; then short pauses of its own, shrinking page by page
    assert [d for d in sleeps.asked if d >= 1] == [3.0, 3.0]
    gaps = [d for d in sleeps.asked if d < 1]
    assert gaps[:2] == [0.1, 0.2] and gaps[2:] == sorted(gaps[2:], reverse=True)
    assert pace.waits == 12  # every call, retries included, goes through the sink's pacing
    cache = CodeCache(table, TENANT)
    assert cache.seeded and every_code_known(crm, cache)
    status = seeder.status()
    assert (status["state"], status["pages"], status["records"], status["total"]) == (
        "done", 10, 1000, 1000)


class StopsAt(MemoryCrm):
    """A CRM whose list hangs at one page until released: a worker killed mid-seed."""

    def __init__(self, hang_at: int) -> None:
        super().__init__()
        self.hang_at = hang_at
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def list_page(self, page: int, page_size: int) -> CrmPage:
        if page == self.hang_at and not self.release.is_set():
            self.calls.append(("page", page))
            self.reached.set()
            await self.release.wait()
        return await super().list_page(page, page_size)


async def test_a_restart_goes_on_from_the_page_it_reached() -> None:
    crm = StopsAt(hang_at=6)
    for i in range(950):
        crm.add(f"C{i:04}")
    table: dict[str, Any] = {}
    first = seeder_for(crm, table)
    first.start()
    await asyncio.wait_for(crm.reached.wait(), 5)
    await first.stop()  # the worker dies while page 6 is being asked
    assert not CodeCache(table, TENANT).seeded
    assert first.status()["state"] == "paused" and first.status()["next_page"] == 6

    crm.release.set()
    crm.calls.clear()
    second = seeder_for(crm, table)  # a new process: only the table is left
    await second.run()
    assert crm.pages_asked() == [6, 7, 8, 9, 10]
    cache = CodeCache(table, TENANT)
    assert cache.seeded and every_code_known(crm, cache)
    assert second.status()["resumed_from_page"] == 6
    assert second.status()["records"] == 950


async def test_a_new_page_size_resumes_at_the_same_place() -> None:
    crm = crm_with(1000)
    table: dict[str, Any] = {}
    cache = CodeCache(table, TENANT)
    cache.write_note(PROGRESS, 400, SeedMark(next_page=5, page_size=100, pages=4,
                                             records=400).as_fields())
    await seeder_for(crm, table, page_size=250).run()
    assert crm.pages_asked() == [2, 3, 4]  # records 251..1000, in pages of 250
    assert cache.seeded


def test_an_unreadable_mark_starts_over() -> None:
    assert SeedMark.from_note({"id": None, "fields": {"next_page": "x"}}, 100) == SeedMark(
        page_size=100)


async def test_a_page_never_overwrites_what_the_change_path_learnt_after_it_was_asked() -> None:
    crm = crm_with(3)
    table: dict[str, Any] = {}
    cache = CodeCache(table, TENANT)

    class RenamedMeanwhile(MemoryCrm):
        async def list_page(self, page: int, page_size: int) -> CrmPage:
            answer = await crm.list_page(page, page_size)
            # while the page travels back, the sink renames record 1 C0000 -> NEW
            renamed = await crm.patch(1, {"code": "NEW"})
            cache.remember(renamed)
            cache.forget_if("c0000", 1)
            return answer

    seeder = seeder_for(RenamedMeanwhile(), table)
    await seeder.run()
    assert cache.seeded
    assert cache.get("c0000") is None  # the page's older word (C0000 -> 1) was not kept
    new = cache.get("new")
    assert new is not None and new.id == 1


async def test_changes_apply_while_seeding_and_the_table_is_not_trusted_for_absent() -> None:
    """The CRM's list never answers; a batch still applies, by code look-ups."""
    crm = StopsAt(hang_at=1)
    sales = crm.add("KH001")  # made by sales in the CRM; the table does not know it yet
    table: dict[str, Any] = {}
    seeder = seeder_for(crm, table)
    cache = CodeCache(table, TENANT)
    engine = SinkEngine(crm, cache, {})

    async def seed() -> None:
        seeder.start()

    sent = Sent()
    applier = CommandApplier(engine, sent.outputs(), seed)
    router = ChangeRouter(ScopeWatcher(Path("/nonexistent/scope.toml")), {}, sent.outputs())
    await router.handle(change_message(0, envelope("c", None, row(1, "KH001"), 12)))
    await router.handle(change_message(1, envelope("c", None, row(2, "KH002"), 13)))
    commands = [Message("commands", 0, n, b"k", value) for n, value in enumerate(sent.commands)]
    await asyncio.wait_for(applier.handle_batch(commands), 5)

    assert seeder.running and not cache.seeded
    assert [r["action"] for r in sent.results] == ["skipped_duplicate_code", "created"]
    assert sorted(r.code for r in crm.records.values()) == ["KH001", "KH002"]
    assert crm.records[sales.id] == sales  # nothing written over the sales record
    assert seeder.status()["state"] == "seeding"
    await seeder.stop()


async def test_seeding_is_paced_with_the_sink() -> None:
    crm = crm_with(500)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await seeder_for(crm, {}, pace=RateLimiter(40)).run()  # 5 pages at 40 calls/s
    # the pacer lets a slot lost to idleness be used once: 5 calls span 3 intervals at least
    assert loop.time() - began >= 3 / 40 - 0.01


def test_status_line_while_seeding() -> None:
    line = seeding_line({"state": "seeding", "records": 2000, "total": 50000, "pages": 4,
                         "records_per_s": 500.0, "reason": None})
    assert "2000 of 50000" in line and "500.0/s" in line
    assert seeding_line({"state": "done"}) == ""
    assert seeding_line(None) == ""


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_listed_record_without_a_code_is_not_remembered(blank: str) -> None:
    crm = MemoryCrm()
    record = crm.add(blank)
    table: dict[str, Any] = {}
    assert not CodeCache(table, TENANT).remember_listed(record, 0)
    assert table == {}


async def test_changes_take_the_pace_before_seeding() -> None:
    pace = SinkFirstPace(50)
    order: list[str] = []

    async def sink_call(n: int) -> None:
        await pace.wait()
        order.append(f"sink{n}")

    async def seeding_call() -> None:
        await pace.wait_behind_sink()
        order.append("seed")

    await pace.wait()  # a call just went: the next ones queue
    sinks = [asyncio.create_task(sink_call(n)) for n in range(3)]
    await asyncio.sleep(0)
    seeding = asyncio.create_task(seeding_call())
    await asyncio.sleep(0)
    sinks.append(asyncio.create_task(sink_call(3)))  # queued after seeding asked: still first
    await asyncio.gather(*sinks, seeding)
    assert order == ["sink0", "sink1", "sink2", "sink3", "seed"]


async def test_seeding_never_waits_for_ever_behind_a_steady_flow_of_changes() -> None:
    pace = SinkFirstPace(1000)
    stop = asyncio.Event()

    async def steady() -> None:
        while not stop.is_set():
            await pace.wait()

    flows = [asyncio.create_task(steady()) for _ in range(3)]
    await asyncio.sleep(0.01)
    await asyncio.wait_for(pace.wait_behind_sink(at_most_s=0.2), 2)
    stop.set()
    await asyncio.gather(*flows)


async def test_a_worker_that_finds_the_table_seeded_reports_what_the_seeding_read() -> None:
    """The metric and the status page give one figure: the finished seeding's count,
    not 0 because an earlier run of the worker did it."""
    crm = crm_with(250)
    table: dict[str, Any] = {}
    await seeder_for(crm, table).run()
    later = seeder_for(crm, table)  # the next start: the table restored from its changelog
    later.start()
    assert later.status()["state"] == "done" and later.status()["records"] == 250
    shown = metrics.exposition().decode()
    assert f'acct2crm_seed_customers{{tenant="{TENANT}"}} 250.0' in shown
    assert f'acct2crm_seed_done{{tenant="{TENANT}"}} 1.0' in shown
