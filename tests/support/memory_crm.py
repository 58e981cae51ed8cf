"""An in-memory CRM with the reference CRM's rules, for unit and property tests.

It keeps codes unique by their normalised key (409), answers 404 for unknown
ids, counts writes, and can yield to the event loop at random so concurrent
lanes of the sink interleave as they would against a real service.

Its code matching is written here again on purpose, not imported from the
product: a test that borrowed ``acct2crm.rules.codes.code_key`` would agree
with a wrong rule. Unlike the reference CRM it can delete (as a real CRM's API
may), and it notes every delete, so a test can prove the sink never asks.

With ``batch_limit`` > 0 it has the contract's batch API (``write_batch``,
``find_by_codes``): operations applied in order, each with the single call's
answer; ``lose_replies`` makes the next batches apply and then answer 502.
"""

from __future__ import annotations

import asyncio
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from acct2crm.errors import CrmConflict, CrmError, CrmNotFound, CrmRejected, CrmRetryable
from acct2crm.model.crm import CrmRecord, Fields
from acct2crm.rules.change import MAPPED_FIELDS
from acct2crm.sink.ports import CrmPage, ItemResult, Write


def stored_code(code: str) -> str:
    """A code as a CRM stores it: surrounding spaces gone, composed (NFC)."""
    return unicodedata.normalize("NFC", code.strip())


def match_key(code: str) -> str:
    """Two codes name one customer when ``casefold(NFC(strip(code)))`` agree."""
    return stored_code(code).casefold()


@dataclass
class MemoryCrm:
    records: dict[int, CrmRecord] = field(default_factory=dict)
    writes: int = 0
    reads: int = 0
    calls: list[tuple[str, object]] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    jitter: random.Random | None = None
    # page number -> how many more times listing it answers 429 with this Retry-After
    refuse_pages: dict[int, tuple[int, float]] = field(default_factory=dict)
    tells_total: bool = False  # list pages carry "total", as some CRMs' do
    batch_limit: int = 0  # > 0: the batch API, at most this many operations or codes
    batches: list[int] = field(default_factory=list)  # size of each batch call
    lose_replies: int = 0  # that many next batches are applied, then answered 502
    reject_codes: set[str] = field(default_factory=set)  # codes answered 422
    _next_id: int = 1

    async def _yield(self) -> None:
        if self.jitter is not None:
            for _ in range(self.jitter.randint(0, 3)):
                await asyncio.sleep(0)

    def _holder(self, code: str, *, other_than: int | None = None) -> CrmRecord | None:
        key = match_key(code)
        for record in self.records.values():
            if match_key(record.code) == key and record.id != other_than:
                return record
        return None

    def add(
        self, code: str, name: str = "Sales record", external_ref: str | None = None
    ) -> CrmRecord:
        """Sales staff creating a customer in the CRM's own screens.

        The code is kept as typed (spaces, case, NFD): a CRM's own UI need not
        normalise, only its API writes are stored as the reference CRM does.
        """
        record = CrmRecord(
            id=self._next_id,
            fields={**{f: None for f in MAPPED_FIELDS}, "code": code, "name": name},
            external_ref=external_ref,
        )
        self.records[record.id] = record
        self._next_id += 1
        return record

    async def find_by_code(self, code: str) -> list[CrmRecord]:
        await self._yield()
        self.reads += 1
        self.calls.append(("find", code))
        holder = self._holder(code)
        return [holder] if holder else []

    async def find_by_external_ref(self, ref: str) -> list[CrmRecord]:
        await self._yield()
        self.reads += 1
        self.calls.append(("find_ref", ref))
        return sorted(
            (r for r in self.records.values() if r.external_ref == ref), key=lambda r: r.id
        )

    async def get(self, crm_id: int) -> CrmRecord:
        await self._yield()
        self.reads += 1
        if crm_id not in self.records:
            raise CrmNotFound(f"no customer {crm_id}", status=404)
        return self.records[crm_id]

    async def list_page(self, page: int, page_size: int) -> CrmPage:
        """Page ``page`` (from 1) of every record by id, as the reference CRM pages."""
        await self._yield()
        self.reads += 1
        self.calls.append(("page", page))
        times, retry_after = self.refuse_pages.get(page, (0, 0.0))
        if times > 0:
            self.refuse_pages[page] = (times - 1, retry_after)
            raise CrmRetryable("CRM answered 429", status=429, retry_after=retry_after)
        ordered = [self.records[i] for i in sorted(self.records)]
        start = (page - 1) * page_size
        more = len(ordered) > start + page_size
        return CrmPage(
            items=ordered[start:start + page_size],
            next_page=page + 1 if more else None,
            total=len(ordered) if self.tells_total else None,
        )

    def pages_asked(self) -> list[int]:
        return [int(str(arg)) for kind, arg in self.calls if kind == "page"]

    async def create(self, fields: Fields) -> CrmRecord:
        await self._yield()
        return self._create(fields)

    def _create(self, fields: Fields) -> CrmRecord:
        self.calls.append(("create", dict(fields)))
        code = fields.get("code") or ""
        if match_key(code) in self.reject_codes:
            raise CrmRejected(f"CRM rejected code (422): {code} refused", field="code")
        if self._holder(code) is not None:
            raise CrmConflict(f"code {code} exists", status=409)
        self.writes += 1
        record = CrmRecord(
            id=self._next_id,
            fields={**{f: fields.get(f) for f in MAPPED_FIELDS}, "code": stored_code(code)},
            external_ref=fields.get("external_ref"),
        )
        self.records[record.id] = record
        self._next_id += 1
        return record

    async def patch(self, crm_id: int, fields: Fields) -> CrmRecord:
        await self._yield()
        return self._patch(crm_id, fields)

    def _patch(self, crm_id: int, fields: Fields) -> CrmRecord:
        self.calls.append(("patch", (crm_id, dict(fields))))
        current = self.records.get(crm_id)
        if current is None:
            raise CrmNotFound(f"no customer {crm_id}", status=404)
        new_code = fields.get("code")
        if new_code is not None and match_key(new_code) in self.reject_codes:
            raise CrmRejected(f"CRM rejected code (422): {new_code} refused", field="code")
        if new_code is not None and self._holder(new_code, other_than=crm_id) is not None:
            raise CrmConflict(f"code {new_code} exists", status=409)
        self.writes += 1
        merged = dict(current.fields)
        merged.update({k: v for k, v in fields.items() if k in MAPPED_FIELDS})
        if new_code is not None:
            merged["code"] = stored_code(new_code)
        ref = fields.get("external_ref", current.external_ref)
        record = CrmRecord(id=crm_id, fields=merged, external_ref=ref)
        self.records[crm_id] = record
        return record

    async def write_batch(self, writes: Sequence[Write]) -> list[ItemResult]:
        assert 0 < len(writes) <= self.batch_limit, "the sink sent a batch over the limit"
        await self._yield()
        self.batches.append(len(writes))
        results: list[ItemResult] = []
        for write in writes:
            try:
                if write.crm_id is None:
                    results.append(self._create(write.fields))
                else:
                    results.append(self._patch(write.crm_id, write.fields))
            except CrmError as exc:
                results.append(exc)
        if self.lose_replies > 0:
            self.lose_replies -= 1
            raise CrmRetryable("CRM answered 502 to a batch (reply lost)", status=502)
        return results

    async def find_by_codes(self, codes: Sequence[str]) -> list[CrmRecord]:
        assert 0 < len(codes) <= self.batch_limit, "the sink asked for too many codes"
        await self._yield()
        self.reads += 1
        self.calls.append(("find_codes", list(codes)))
        keys = {match_key(c) for c in codes}
        return [r for r in self.records.values() if match_key(r.code) in keys]

    async def delete(self, crm_id: int) -> None:
        """What a CRM's API may offer and the sink must never call (rule R3)."""
        await self._yield()
        self.calls.append(("delete", crm_id))
        if self.records.pop(crm_id, None) is None:
            raise CrmNotFound(f"no customer {crm_id}", status=404)
        self.deleted.append(crm_id)

    def by_code(self) -> dict[str, CrmRecord]:
        return {match_key(r.code): r for r in self.records.values()}
