"""An in-memory CRM with the reference CRM's rules, for unit and property tests.

It keeps codes unique by their normalised key (409), answers 404 for unknown
ids, counts writes, and can yield to the event loop at random so concurrent
lanes of the sink interleave as they would against a real service.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from acct2crm.errors import CrmConflict, CrmNotFound
from acct2crm.rules.change import MAPPED_FIELDS
from acct2crm.rules.codes import code_key
from acct2crm.rules.decide import CrmRecord, Fields


@dataclass
class MemoryCrm:
    records: dict[int, CrmRecord] = field(default_factory=dict)
    writes: int = 0
    reads: int = 0
    calls: list[tuple[str, object]] = field(default_factory=list)
    jitter: random.Random | None = None
    _next_id: int = 1

    async def _yield(self) -> None:
        if self.jitter is not None:
            for _ in range(self.jitter.randint(0, 3)):
                await asyncio.sleep(0)

    def _holder(self, code: str, *, other_than: int | None = None) -> CrmRecord | None:
        key = code_key(code)
        for record in self.records.values():
            if code_key(record.code) == key and record.id != other_than:
                return record
        return None

    def add(
        self, code: str, name: str = "Sales record", external_ref: str | None = None
    ) -> CrmRecord:
        """Sales staff creating a customer directly in the CRM."""
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

    async def create(self, fields: Fields) -> CrmRecord:
        await self._yield()
        self.calls.append(("create", dict(fields)))
        code = fields.get("code") or ""
        if self._holder(code) is not None:
            raise CrmConflict(f"code {code} exists", status=409)
        self.writes += 1
        record = CrmRecord(
            id=self._next_id,
            fields={f: fields.get(f) for f in MAPPED_FIELDS},
            external_ref=fields.get("external_ref"),
        )
        self.records[record.id] = record
        self._next_id += 1
        return record

    async def patch(self, crm_id: int, fields: Fields) -> CrmRecord:
        await self._yield()
        self.calls.append(("patch", (crm_id, dict(fields))))
        current = self.records.get(crm_id)
        if current is None:
            raise CrmNotFound(f"no customer {crm_id}", status=404)
        new_code = fields.get("code")
        if new_code is not None and self._holder(new_code, other_than=crm_id) is not None:
            raise CrmConflict(f"code {new_code} exists", status=409)
        self.writes += 1
        merged = dict(current.fields)
        merged.update({k: v for k, v in fields.items() if k in MAPPED_FIELDS})
        ref = fields.get("external_ref", current.external_ref)
        record = CrmRecord(id=crm_id, fields=merged, external_ref=ref)
        self.records[crm_id] = record
        return record

    def by_code(self) -> dict[str, CrmRecord]:
        return {code_key(r.code): r for r in self.records.values()}
