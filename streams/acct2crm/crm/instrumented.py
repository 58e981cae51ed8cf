"""A CRM port that counts and times every call for the metrics, and changes nothing else."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from acct2crm import metrics
from acct2crm.crm.client import CrmClient
from acct2crm.model.crm import CrmRecord, Fields
from acct2crm.sink.ports import CrmPage, ItemResult, Write

T = TypeVar("T")


class InstrumentedCrm:
    """Wraps ``CrmClient``: each call's outcome (``ok`` or its error's class) and duration."""

    def __init__(self, crm: CrmClient, tenant: str) -> None:
        self._crm = crm
        self._tenant = tenant
        self.batch_limit = crm.batch_limit  # the wrapped CRM's batch API, unchanged

    async def _timed(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        outcome = "ok"
        try:
            return await call()
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            metrics.crm_call(self._tenant, operation, outcome, time.monotonic() - started)

    async def find_by_code(self, code: str) -> list[CrmRecord]:
        return await self._timed("find_by_code", lambda: self._crm.find_by_code(code))

    async def find_by_external_ref(self, ref: str) -> list[CrmRecord]:
        return await self._timed(
            "find_by_external_ref", lambda: self._crm.find_by_external_ref(ref)
        )

    async def get(self, crm_id: int) -> CrmRecord:
        return await self._timed("get", lambda: self._crm.get(crm_id))

    async def create(self, fields: Fields) -> CrmRecord:
        return await self._written("create", lambda: self._timed(
            "create", lambda: self._crm.create(fields)))

    async def patch(self, crm_id: int, fields: Fields) -> CrmRecord:
        return await self._written("update", lambda: self._timed(
            "patch", lambda: self._crm.patch(crm_id, fields)))

    async def _written(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await call()
        except Exception as exc:
            metrics.crm_write(self._tenant, operation, type(exc).__name__)
            raise
        metrics.crm_write(self._tenant, operation, "ok")
        return result

    async def find_by_codes(self, codes: Sequence[str]) -> list[CrmRecord]:
        return await self._timed("find_by_codes", lambda: self._crm.find_by_codes(codes))

    async def write_batch(self, writes: Sequence[Write]) -> list[ItemResult]:
        results = await self._timed("write_batch", lambda: self._crm.write_batch(writes))
        for write, result in zip(writes, results, strict=False):
            operation = "create" if write.crm_id is None else "update"
            outcome = type(result).__name__ if isinstance(result, Exception) else "ok"
            metrics.crm_write(self._tenant, operation, outcome)
        return results

    async def list_page(self, page: int, page_size: int) -> CrmPage:
        return await self._timed("list_page", lambda: self._crm.list_page(page, page_size))

    def iter_all(self, page_size: int = 200) -> AsyncIterator[CrmRecord]:
        return self._crm.iter_all(page_size)

    async def aclose(self) -> None:
        await self._crm.aclose()
