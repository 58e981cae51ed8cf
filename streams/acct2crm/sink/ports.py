"""What the sink needs from a CRM; ``CrmClient`` and the tests' in-memory CRM both fit."""

from __future__ import annotations

from typing import Protocol

from acct2crm.model.crm import CrmRecord, Fields


class CrmPort(Protocol):
    async def find_by_code(self, code: str) -> list[CrmRecord]: ...

    async def find_by_external_ref(self, ref: str) -> list[CrmRecord]: ...

    async def get(self, crm_id: int) -> CrmRecord: ...

    async def create(self, fields: Fields) -> CrmRecord: ...

    async def patch(self, crm_id: int, fields: Fields) -> CrmRecord: ...
