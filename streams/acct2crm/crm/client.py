"""The CRM's REST API (docs/contract.md) over httpx, errors mapped to our hierarchy.

The HTTP client is injected: httpx ``MockTransport`` in unit tests, the real
reference CRM in integration tests, a real CRM in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from acct2crm.crm.replies import (
    check_response,
    id_from_location,
    item_result,
    json_body,
    record_from_json,
    written_record,
)
from acct2crm.crm.url_check import check_crm_url
from acct2crm.errors import CrmMisconfigured, CrmRetryable
from acct2crm.model.crm import CrmRecord, Fields
from acct2crm.rules.codes import code_key
from acct2crm.sink.ports import CrmPage, ItemResult, Write

BATCH_LIMIT = 100  # the contract's batch API: at most 100 operations or codes a call


class CrmClient:
    """Async CRM client; every method raises only ``acct2crm.errors.CrmError``."""

    def __init__(self, http: httpx.AsyncClient, *, batch_limit: int = BATCH_LIMIT) -> None:
        self._http = http
        self.batch_limit = batch_limit  # 0: this CRM has no batch API

    @classmethod
    def connect(
        cls,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        allow_insecure_http: bool = False,
    ) -> CrmClient:
        """A client for ``base_url``; ``ConfigError`` if it would send the token in clear."""
        check_crm_url(base_url, allow_insecure_http=allow_insecure_http)
        http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            follow_redirects=False,  # a redirect is a configuration error, never followed
        )
        return cls(http)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def find_by_code(self, code: str) -> list[CrmRecord]:
        return await self._list({"code": code})

    async def find_by_external_ref(self, ref: str) -> list[CrmRecord]:
        """Records the sync stamped as coming from the row ``ref`` names (rule R2d)."""
        return await self._list({"external_ref": ref})

    async def get(self, crm_id: int) -> CrmRecord:
        return record_from_json(await self._read("GET", f"/api/customers/{crm_id}"))

    async def create(self, fields: Fields) -> CrmRecord:
        response = await self._send("POST", "/api/customers", json=fields)
        record = written_record(response)
        if record is not None:
            return record
        return await self._reread_created(response, fields)

    async def patch(self, crm_id: int, fields: Fields) -> CrmRecord:
        response = await self._send("PATCH", f"/api/customers/{crm_id}", json=fields)
        record = written_record(response)
        return record if record is not None else await self.get(crm_id)

    async def find_by_codes(self, codes: Sequence[str]) -> list[CrmRecord]:
        """Records holding any of ``codes`` in one call (``?codes=A,B``, at most 100)."""
        return await self._list({"codes": ",".join(codes)})

    async def write_batch(self, writes: Sequence[Write]) -> list[ItemResult]:
        """Creates and updates in one call, applied in order; each item its own result.

        A failure of the whole call raises as a single call's would; an item's
        failure is returned as the error the same single call would raise.
        """
        operations = [
            {"op": "create", "fields": w.fields}
            if w.crm_id is None
            else {"op": "update", "id": w.crm_id, "fields": w.fields}
            for w in writes
        ]
        response = await self._send(
            "POST", "/api/customers/batch", json={"operations": operations}, listing=True
        )
        body = json_body(response)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise CrmMisconfigured(
                f"CRM answered a batch ({response.status_code}) without a list of results; "
                "does this CRM have the batch API?",
                status=response.status_code,
            )
        return [
            item_result(results[i] if i < len(results) else None, writes[i])
            for i in range(len(writes))
        ]

    async def iter_all(self, page_size: int = 200) -> AsyncIterator[CrmRecord]:
        """Every CRM customer, page by page (seeds the CRM-code table)."""
        page: int | None = 1
        while page is not None:
            body = await self._read(
                "GET", "/api/customers", params={"page": page, "page_size": page_size}, listing=True
            )
            for item in body.get("items", []):
                yield record_from_json(item)
            next_page = body.get("next_page")
            page = next_page if isinstance(next_page, int) else None

    async def list_page(self, page: int, page_size: int) -> CrmPage:
        """Page ``page`` (from 1) of every CRM customer: one call (seeding, resumable)."""
        body = await self._read(
            "GET", "/api/customers", params={"page": page, "page_size": page_size}, listing=True
        )
        next_page, total = body.get("next_page"), body.get("total")
        return CrmPage(
            items=[record_from_json(item) for item in body.get("items", [])],
            next_page=next_page if isinstance(next_page, int) else None,
            total=total if isinstance(total, int) and not isinstance(total, bool) else None,
        )

    async def _list(self, params: dict[str, str]) -> list[CrmRecord]:
        body = await self._read("GET", "/api/customers", params=params, listing=True)
        return [record_from_json(item) for item in body.get("items", [])]

    async def _reread_created(self, response: httpx.Response, fields: Fields) -> CrmRecord:
        """A create answered 2xx without the record: find what it made."""
        created_id = id_from_location(response.headers.get("Location"))
        if created_id is not None:
            return await self.get(created_id)
        code = fields.get("code") or ""
        for record in await self.find_by_code(code):
            if code_key(record.code) == code_key(code):
                return record
        # nothing to show for it: retry the create; a 409 then decides from the CRM
        raise CrmRetryable("CRM accepted a create but neither returned nor lists the record")

    async def _read(
        self, method: str, url: str, *, listing: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        response = await self._send(method, url, listing=listing, **kwargs)
        body = json_body(response)
        if not isinstance(body, dict):
            raise CrmMisconfigured(
                f"CRM answered {method} {url} ({response.status_code}) without a JSON object; "
                "is crm_url the CRM's API?",
                status=response.status_code,
            )
        return body

    async def _send(
        self, method: str, url: str, *, listing: bool = False, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise CrmRetryable(f"CRM timed out on {method} {url}") from exc
        except httpx.TransportError as exc:
            raise CrmRetryable(f"CRM unreachable on {method} {url}: {type(exc).__name__}") from exc
        check_response(response, f"{method} {url}", listing=listing)
        return response


