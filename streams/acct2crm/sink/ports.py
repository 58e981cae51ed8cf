"""What the sink needs from a CRM; ``CrmClient`` and the tests' in-memory CRM both fit.

A CRM with a batch API (several writes in one call, lookups of many codes in
one call) says so with ``batch_limit`` > 0 and offers ``write_batch`` and
``find_by_codes``; one without them keeps ``batch_limit`` at 0 (or lacks it)
and the sink makes single calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from acct2crm.errors import CrmError
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


@dataclass(frozen=True)
class Write:
    """One operation of a batch: a create (``crm_id`` None) or an update of ``crm_id``."""

    fields: Fields
    crm_id: int | None = None


# one item's answer: the record written, or the error the same single call would raise
ItemResult = CrmRecord | CrmError


@runtime_checkable
class BatchCrmPort(CrmPort, Protocol):
    batch_limit: int  # most operations (and codes) per call; 0 = no batches

    async def write_batch(self, writes: Sequence[Write]) -> list[ItemResult]:
        """Apply in order, one result per write; a whole-call failure raises."""
        ...

    async def find_by_codes(self, codes: Sequence[str]) -> list[CrmRecord]:
        """Records holding any of ``codes`` (no code may contain a comma)."""
        ...


def batch_limit(crm: CrmPort) -> int:
    """How many operations the CRM takes in one call; 0 when it has no batches."""
    if isinstance(crm, BatchCrmPort):
        return max(0, int(crm.batch_limit))
    return 0
