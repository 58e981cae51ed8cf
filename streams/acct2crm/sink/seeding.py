"""Seeding the CRM-code table from the CRM's paged list, beside the change path.

On a first start (a new install, a new tenant, a lost changelog) the table
knows no code. Until it has seen every page (``CodeCache.seeded``), the sink
asks the CRM by code for what the table does not know, so changes go on while
the seeder reads. The seeder asks one page per call, paced by the sink's own
rate limiter; a refused page (429, 5xx, timeout) is asked again after its
``Retry-After``, never from page 1. After each page it writes how far it got
into the table itself (a bookkeeping entry, kept in the table's changelog),
so a restarted worker goes on from that page.

A page never overwrites what the change path learnt after the page was asked
(``CodeCache.remember_listed``). A record the list misses (deleted or moved
meanwhile) only costs a look-up or a 409 later: the sink checks a decision
from the table against the CRM before it writes over a record or skips an
insert, and the CRM's unique codes guard a create.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from acct2crm import metrics
from acct2crm.errors import CrmError
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.pacing import RateLimiter, RetryPolicy, WaitState, call_with_retry
from acct2crm.sink.ports import CrmPage, CrmPages

log = logging.getLogger(__name__)

PROGRESS = " seeding"  # the table's bookkeeping entry (no code key starts with a space)
DEFAULT_PAGE_SIZE = 500  # the reference CRM's largest page (docs/contract.md)
PERMANENT_PAUSE_S = 60.0  # a page the CRM refused for good is asked again after this
MAX_GAP_S = 5.0  # the longest pause seeding puts between its own calls after 429s


class SinkFirstPace(RateLimiter):
    """The sink's pacing, shared with seeding, where seeding gives way to changes.

    While calls of the change path wait for their turn, the seeder waits for
    them to pass (at most ``at_most_s``, so seeding never stops under a steady
    flow of changes), then takes its own turn.
    """

    def __init__(self, per_s: float) -> None:
        super().__init__(per_s)
        self._sink_waiting = 0
        self._sink_idle = asyncio.Event()
        self._sink_idle.set()

    async def wait(self) -> None:
        self._sink_waiting += 1
        self._sink_idle.clear()
        try:
            await super().wait()
        finally:
            self._sink_waiting -= 1
            if not self._sink_waiting:
                self._sink_idle.set()

    async def wait_behind_sink(self, at_most_s: float = 1.0) -> None:
        if self._sink_waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sink_idle.wait(), at_most_s)
        await super().wait()


@dataclass(frozen=True)
class SeedMark:
    """How far seeding got: stored in the table after each page."""

    next_page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    pages: int = 0
    records: int = 0
    last_id: int | None = None
    total: int | None = None

    def for_page_size(self, page_size: int) -> SeedMark:
        """The same point in the list, counted in pages of ``page_size``."""
        if page_size == self.page_size:
            return self
        done = (self.next_page - 1) * self.page_size  # records before the next page
        return replace(self, next_page=done // page_size + 1, page_size=page_size)

    def after(self, page: CrmPage, listed: int) -> SeedMark:
        last = max((r.id for r in page.items), default=None)
        return replace(
            self,
            next_page=page.next_page if page.next_page is not None else self.next_page + 1,
            pages=self.pages + 1,
            records=self.records + listed,
            last_id=last if last is not None else self.last_id,
            total=page.total if page.total is not None else self.total,
        )

    def as_fields(self) -> dict[str, str | None]:
        return {
            "next_page": str(self.next_page),
            "page_size": str(self.page_size),
            "pages": str(self.pages),
            "records": str(self.records),
            "total": None if self.total is None else str(self.total),
        }

    @classmethod
    def from_note(cls, note: dict[str, Any] | None, page_size: int) -> SeedMark:
        """The stored mark, or the start of the list; an unreadable one starts over."""
        if not note:
            return cls(page_size=page_size)
        fields = note.get("fields") or {}
        try:
            total = fields.get("total")
            mark = cls(
                next_page=max(1, int(fields["next_page"])),
                page_size=max(1, int(fields["page_size"])),
                pages=int(fields.get("pages") or 0),
                records=int(fields.get("records") or 0),
                last_id=int(note["id"]) if note.get("id") is not None else None,
                total=int(total) if total is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return cls(page_size=page_size)
        return mark.for_page_size(page_size)


@dataclass
class SeedProgress:
    """What status shows of seeding."""

    state: str = "not_started"  # not_started, seeding, waiting_for_crm, paused, done
    mark: SeedMark = SeedMark()
    resumed_from_page: int | None = None
    run_records: int = 0  # records listed by this process (for its rate)
    run_started: float | None = None
    finished_at: float | None = None
    reason: str | None = None

    def as_dict(self, now: float) -> dict[str, Any]:
        elapsed = now - self.run_started if self.run_started is not None else 0.0
        rate = self.run_records / elapsed if elapsed > 0 else 0.0
        mark = self.mark
        return {
            "state": self.state,
            "pages": mark.pages,
            "records": mark.records,
            "total": mark.total,
            "next_page": mark.next_page,
            "page_size": mark.page_size,
            "resumed_from_page": self.resumed_from_page,
            "records_per_s": round(rate, 1),
            "finished_at": self.finished_at,
            "reason": self.reason,
        }


class Seeder:
    """Seeds one tenant's part of the CRM-code table from that tenant's CRM."""

    def __init__(
        self,
        tenant: str,
        crm: CrmPages,
        table: MutableMapping[str, Any],
        *,
        pace: RateLimiter,
        retry: RetryPolicy,
        page_size: int = DEFAULT_PAGE_SIZE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant = tenant
        self.cache = CodeCache(table, tenant)
        self.wait_state = WaitState()  # its own: a refused page is not the sink waiting
        self.progress = SeedProgress()
        self._crm = crm
        self._pace = pace
        self._retry = retry
        self._page_size = max(1, page_size)
        self._sleep = sleep
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        # a pause between pages that grows on each 429 and shrinks on each page:
        # an unpaced seeder would take the whole limit, and changes would meet the 429s
        self._gap = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Seed in the background unless the table is seeded or seeding runs."""
        if self.cache.seeded:  # seeded by an earlier run of the worker (its changelog)
            self._found_seeded()
            return
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run_logged(), name=f"seed CRM codes ({self.tenant})"
        )

    async def stop(self) -> None:
        """Stop seeding (the partition went elsewhere); the mark stays in the table."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.progress.state != "done":
            self.progress.state = "not_started" if task is None else "paused"

    def _found_seeded(self) -> None:
        """A seeding an earlier run finished: its figures from its last note in the table,
        for the status and the metric alike (they said 0 customers)."""
        self.progress.mark = SeedMark.from_note(self.cache.note(PROGRESS), self._page_size)
        self.progress.state = "done"
        metrics.seed_progress(self.tenant, self.progress.mark.records, done=True)

    def status(self) -> dict[str, Any]:
        body = self.progress.as_dict(self._clock())
        if self.cache.seeded:
            body["state"] = "done"
        return body

    async def run(self) -> None:
        """Seed to the end of the list, from where the table says it got to."""
        if self.cache.seeded:
            self._found_seeded()
            return
        mark = SeedMark.from_note(self.cache.note(PROGRESS), self._page_size)
        progress = self.progress
        progress.mark, progress.resumed_from_page = mark, mark.next_page
        progress.run_started, progress.run_records = self._clock(), 0
        progress.state = "seeding"
        log.info("seeding the CRM-code table of %s from page %d (%d per page)",
                 self.tenant, mark.next_page, mark.page_size)
        while True:
            asked_at_ms = int(self._clock() * 1000)
            page = await self._page(mark)
            listed = sum(self.cache.remember_listed(r, asked_at_ms) for r in page.items)
            mark = mark.after(page, len(page.items))
            self.cache.write_note(PROGRESS, mark.last_id, mark.as_fields())
            progress.mark, progress.state = mark, "seeding"
            progress.run_records += len(page.items)
            metrics.seed_progress(self.tenant, mark.records)
            log.debug("seeding %s: page %d, %d listed, %d new", self.tenant, mark.pages,
                      len(page.items), listed)
            if page.next_page is None:
                break
        self.cache.mark_seeded()
        metrics.seed_progress(self.tenant, mark.records, done=True)
        progress.state, progress.finished_at = "done", self._clock()
        log.info("CRM-code table of %s seeded: %d CRM customers in %d pages",
                 self.tenant, mark.records, mark.pages)

    async def _page(self, mark: SeedMark) -> CrmPage:
        """One page, asked again (paced, after Retry-After) until the CRM answers it."""
        async def paced() -> CrmPage:
            if self._gap:
                await self._sleep(self._gap)
            if isinstance(self._pace, SinkFirstPace):
                await self._pace.wait_behind_sink()
            else:
                await self._pace.wait()
            return await self._crm.list_page(mark.next_page, mark.page_size)

        def on_retry(exc: CrmError, delay: float) -> None:
            if exc.status == 429:
                self._gap = min(max(2 * self._gap, 0.1), MAX_GAP_S)
            self.progress.state, self.progress.reason = "waiting_for_crm", str(exc)
            log.info("seeding %s: page %d refused (%s); asking again in %.1fs",
                     self.tenant, mark.next_page, exc, delay)

        while True:
            try:
                page = await call_with_retry(
                    paced, self._retry, self.wait_state, sleep=self._sleep, on_retry=on_retry
                )
            except CrmError as exc:  # refused for good: the sink's look-ups go on meanwhile
                self.progress.state, self.progress.reason = "paused", str(exc)
                log.warning("seeding %s: the CRM refused page %d (%s); asking again in %.0fs",
                            self.tenant, mark.next_page, exc, PERMANENT_PAUSE_S)
                await self._sleep(PERMANENT_PAUSE_S)
                continue
            self.progress.reason = None
            self._gap = self._gap * 0.9 if self._gap > 0.01 else 0.0
            return page

    async def _run_logged(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the sink works without a seeded table; say why, never raise
            log.exception("seeding the CRM-code table of %s stopped", self.tenant)
            self.progress.state, self.progress.reason = "paused", f"internal error: {exc}"
