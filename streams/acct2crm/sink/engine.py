"""The CRM sink: turns sync intents into CRM calls, in commit order per code.

Intents whose codes (or rows) overlap form one lane and run strictly in
order; separate lanes run concurrently, bounded by a semaphore and an
optional pace. Where the CRM has batches (and ``batch_size`` allows), the
lanes' writes and code look-ups travel together in batch calls
(batching.py); each item still gets its own answer. Every CRM reply feeds
the code cache. A decision made from the cache is checked against the CRM
before it writes over a record or skips an insert; an update is only
created (R2c) once the CRM was asked whether a record already names its row
(R2d); a 409/404 makes the rule decide again from the CRM's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from acct2crm.errors import (
    CrmConflict,
    CrmError,
    CrmNotFound,
    CrmPermanent,
    CrmRejected,
    CrmRetryable,
)
from acct2crm.model.crm import CrmRecord
from acct2crm.model.keys import row_lane_token
from acct2crm.rules.change import Action
from acct2crm.rules.codes import code_key
from acct2crm.rules.decide import Create, Decision, SyncIntent, decide, pick_ours, replay_reason
from acct2crm.sink.batching import BatchWrites, CodeLookups
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.lookahead import may_end_in_r2d
from acct2crm.sink.pacing import (
    OutageGate,
    RateLimiter,
    RetryPolicy,
    WaitState,
    call_with_retry,
)
from acct2crm.sink.ports import BatchCrmPort, CrmPort, Write, batch_limit
from acct2crm.sink.positions import PositionBook

log = logging.getLogger(__name__)

MAX_ROUNDS = 8  # decisions per intent: cache, CRM view, R2d look-up, 409s
T = TypeVar("T")


@dataclass(frozen=True)
class Applied:
    """What the sink did with one intent: the result record's substance."""

    intent: SyncIntent
    action: Action
    reason: str
    crm_id: int | None = None
    error: str | None = None  # for a failure: the kind of error, named in its dead letter


class SinkEngine:
    def __init__(
        self,
        crm: CrmPort,
        cache: CodeCache,
        positions: MutableMapping[str, Any],
        *,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        pace: RateLimiter | None = None,
        wait_state: WaitState | None = None,
        batch_size: int | None = None,
    ) -> None:
        self._crm = crm
        self._cache = cache
        self._positions = PositionBook(positions)
        self._retry = retry or RetryPolicy()
        self._slots = asyncio.Semaphore(max(1, max_concurrency))
        self._pace = pace or RateLimiter(0)
        self.wait_state = wait_state or WaitState()
        self.outage = OutageGate()  # one call probes a failing CRM, the rest wait in order
        # batches: as many as both the CRM and the setting allow (None: the CRM's limit)
        limit = batch_limit(crm)
        size = limit if batch_size is None else min(max(0, batch_size), limit)
        self.batch_size = size
        self._writes: BatchWrites | None = None
        self._lookups: CodeLookups | None = None
        if size > 1 and isinstance(crm, BatchCrmPort):
            batch_crm = crm
            self._writes = BatchWrites(
                lambda ws: self._paced(partial(batch_crm.write_batch, ws)), size, max_concurrency
            )
            self._lookups = CodeLookups(
                lambda keys: self._paced(partial(batch_crm.find_by_codes, keys)),
                code_key,
                size,
                max_concurrency,
            )

    async def apply_batch(self, intents: Sequence[SyncIntent]) -> list[Applied]:
        """One outcome per intent, in the batch's order.

        A lane never raises: an error is the outcome of the command it hit,
        and the lane goes on with its next command. So every lane runs to its
        end before this returns, and no write of this batch can land after a
        later batch wrote a newer change for the same code.
        """
        owners = await self._owners_ahead(intents)
        extra = {i: (code_key(r.code),) for i, r in owners.items() if r is not None}
        results: dict[int, Applied] = {}

        async def run_lane(indexes: list[int]) -> None:
            for position, index in enumerate(indexes):
                # first of its lane: nothing of this batch touched that record yet
                ahead = position == 0 and index in owners
                ours = owners.get(index) if ahead else None
                results[index] = await self._apply_guarded(intents[index], ours, looked_up=ahead)

        await asyncio.gather(*(run_lane(lane) for lane in plan_lanes(intents, extra)))
        return [results[index] for index in range(len(intents))]

    async def _owners_ahead(self, intents: Sequence[SyncIntent]) -> dict[int, CrmRecord | None]:
        """For each update that may end in R2d (lookahead.py): the record naming its row.

        Such an update writes that record under a code no other part of the
        intent names; its lane must include that code so the record keeps
        commit order with every other change of the batch. Only the row's own
        changes can make a record name it, and those share its lane, so
        looking before the batch is enough. A record found may be moved off
        its code, which a later update counted on: so look until none is new.
        """
        owners: dict[int, CrmRecord | None] = {}
        asked: set[int] = set()

        async def look(index: int) -> tuple[int, CrmRecord | None] | None:
            try:
                return index, await self._find_ours(intents[index].external_ref)
            except CrmError as exc:  # not an answer: its lane asks again, fails that command alone
                log.info("looking up the record of a row ahead of its batch failed: %s", exc)
                return None

        while True:
            codes = {i: (code_key(r.code),) for i, r in owners.items() if r is not None}
            ahead = may_end_in_r2d(intents, lambda k: self._cache.get(k) is not None, codes)
            wanted = [i for i in ahead if i not in asked]
            if not wanted:
                return owners
            asked.update(wanted)
            found = await asyncio.gather(*(look(index) for index in wanted))
            owners.update(pair for pair in found if pair is not None)

    async def _apply_guarded(
        self, intent: SyncIntent, ours: CrmRecord | None = None, *, looked_up: bool = False
    ) -> Applied:
        """``apply_one``, with any error it lets out turned into this command's failure."""
        try:
            return await self.apply_one(intent, ours, looked_up=looked_up)
        except CrmError as exc:  # a look-up the CRM refused for good; retryable ones wait inside
            return Applied(
                intent,
                Action.FAILED,
                f"CRM refused a look-up for this change: {exc}",
                error=type(exc).__name__,
            )
        except Exception as exc:
            log.exception("unexpected error applying a change of row %s", intent.accounting_id)
            return Applied(
                intent, Action.FAILED, f"internal error: {exc}", error=type(exc).__name__
            )

    async def apply_one(
        self, intent: SyncIntent, ours: CrmRecord | None = None, *, looked_up: bool = False
    ) -> Applied:
        """Apply one intent; ``ours``/``looked_up``: the R2d look-up, if already done."""
        applied = self._positions.applied(intent.tenant, intent.accounting_id)
        if applied is not None and intent.position.lsn <= applied.lsn:
            return Applied(
                intent,
                Action.UNCHANGED,
                f"{replay_reason(applied.lsn)}; nothing written",
            )
        keys = intent.code_keys()
        fresh = not all(self._cache.known(k) for k in keys)
        view = await self._fresh_view(keys) if fresh else {k: self._cache.get(k) for k in keys}
        for _ in range(MAX_ROUNDS):
            decision = decide(intent, view, ours)
            if not fresh and _needs_check(intent, decision):
                view, fresh = await self._fresh_view(keys), True
                continue
            if not looked_up and _creates_for_update(intent, decision):
                ours, looked_up = await self._find_ours(intent.external_ref), True
                continue
            if decision.call is None:
                self._positions.record(intent.tenant, intent.accounting_id, intent.position)
                return Applied(intent, decision.action, decision.reason, decision.crm_id)
            try:
                record = await self._execute(decision)
            except (CrmConflict, CrmNotFound) as exc:
                log.info("CRM answered %s; deciding again from the CRM's records", exc)
                view, fresh = await self._fresh_view(keys), True
                ours, looked_up = None, False
                continue
            except CrmRejected as exc:  # it says "CRM rejected <field> (<status>): <why>"
                return Applied(intent, Action.FAILED, str(exc), error="CrmRejected")
            except CrmPermanent as exc:
                return Applied(
                    intent,
                    Action.FAILED,
                    f"CRM refused the change: {exc}",
                    error=type(exc).__name__,
                )
            self._cache.remember(record)
            moved_from = {*keys, *([code_key(ours.code)] if ours is not None else [])}
            for key in moved_from - {code_key(record.code)}:
                self._cache.forget_if(key, record.id)
            self._positions.record(intent.tenant, intent.accounting_id, intent.position)
            return Applied(intent, decision.action, decision.reason, record.id)
        return Applied(
            intent,
            Action.FAILED,
            f"the CRM's records kept changing over {MAX_ROUNDS} tries",
            error="CrmConflict",
        )

    async def _execute(self, decision: Decision) -> CrmRecord:
        call = decision.call
        assert call is not None
        if self._writes is not None:
            write = Write(call.fields, None if isinstance(call, Create) else call.crm_id)
            return await self._retrying(partial(self._writes.submit, write))
        if isinstance(call, Create):
            return await self._call(partial(self._crm.create, call.fields))
        return await self._call(partial(self._crm.patch, call.crm_id, call.fields))

    async def _holder(self, key: str) -> CrmRecord | None:
        """Who holds one code key now, by a batched look-up where the CRM has one."""
        if self._lookups is not None and "," not in key:
            return await self._retrying(partial(self._lookups.submit, key))
        found = await self._call(partial(self._crm.find_by_code, key))
        return next((r for r in found if code_key(r.code) == key), None)

    async def _fresh_view(self, keys: Sequence[str]) -> dict[str, CrmRecord | None]:
        """Ask the CRM who holds each code now, and remember the answer."""
        view: dict[str, CrmRecord | None] = {}
        holders = await asyncio.gather(*(self._holder(key) for key in keys))
        for key, holder in zip(keys, holders, strict=True):
            if holder is None:
                self._cache.remember_absent(key)
            else:
                self._cache.remember(holder)
            view[key] = holder
        return view

    async def _find_ours(self, ref: str) -> CrmRecord | None:
        """The CRM record that already names this row (R2d), remembered under its code."""
        found = await self._call(partial(self._crm.find_by_external_ref, ref))
        ours = pick_ours(found, ref)
        if ours is not None:
            self._cache.remember(ours)
        return ours

    async def _paced(self, make: Callable[[], Awaitable[T]]) -> T:
        """One CRM call within the concurrency and the pace; a 429 slows the pace."""
        async with self._slots:
            await self._pace.wait()
            try:
                return await make()
            except CrmRetryable as exc:
                if exc.status == 429:
                    self._pace.learn(exc.retry_after)
                raise

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        return await self._retrying(partial(self._paced, make))

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retry(
            call,
            self._retry,
            self.wait_state,
            gate=self.outage,
            on_retry=lambda exc, delay: log.warning(
                "CRM not available (%s); retrying in %.1fs, nothing is lost", exc, delay
            ),
        )


def _needs_check(intent: SyncIntent, decision: Decision) -> bool:
    """Only an insert's create may rest on the cache (a 409 guards it).

    Writing over a record, skipping an insert, or creating for an update
    (R2c: the cache may not know that sales made the old code meanwhile)
    is checked against the CRM first.
    """
    if decision.action is Action.SKIPPED_DUPLICATE_CODE:
        return True
    if isinstance(decision.call, Create):
        return not intent.is_insert
    return decision.call is not None


def _creates_for_update(intent: SyncIntent, decision: Decision) -> bool:
    """An R2c create: the CRM may hold this row under another code (R2d); look first."""
    return isinstance(decision.call, Create) and not intent.is_insert


def plan_lanes(
    intents: Sequence[SyncIntent], extra: Mapping[int, Sequence[str]] | None = None
) -> list[list[int]]:
    """Group intents that share a code or a row; each lane keeps commit order.

    ``extra``: more code keys an intent may write, by its index (R2d).
    """
    parent = list(range(len(intents)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for index, intent in enumerate(intents):
        more = (extra or {}).get(index, ())
        for token in (*intent.code_keys(), *more, row_lane_token(intent.accounting_id)):
            if token in owner:
                parent[find(index)] = find(owner[token])
            else:
                owner[token] = index
    lanes: dict[int, list[int]] = {}
    for index in range(len(intents)):
        lanes.setdefault(find(index), []).append(index)
    return list(lanes.values())
