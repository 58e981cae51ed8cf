"""What the sink needs from a CRM; ``CrmClient`` and the tests' in-memory CRM both fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from acct2crm.model.crm import CrmRecord, Fields


class CrmPort(Protocol):
    async def find_by_code(self, code: str) -> list[CrmRecord]: ...

    async def find_by_external_ref(self, ref: str) -> list[CrmRecord]: ...

    async def get(self, crm_id: int) -> CrmRecord: ...

    async def create(self, fields: Fields) -> CrmRecord: ...

    async def patch(self, crm_id: int, fields: Fields) -> CrmRecord: ...


@dataclass(frozen=True)
class CrmPage:
    """One page of the CRM's customer list; ``total`` only if the CRM tells."""

    items: list[CrmRecord]
    next_page: int | None
    total: int | None = None


class CrmPages(Protocol):
    """What the seeder needs: the CRM's list, one page per call."""

    async def list_page(self, page: int, page_size: int) -> CrmPage: ...
