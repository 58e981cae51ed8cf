"""The CRM's REST API (SPEC section 4) over httpx, errors mapped to our hierarchy.

The HTTP client is injected: httpx ``MockTransport`` in unit tests, the real
reference CRM in integration tests, a real CRM in production.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from acct2crm.errors import (
    CrmConflict,
    CrmNotFound,
    CrmPermanent,
    CrmRejected,
    CrmRetryable,
)
from acct2crm.rules.change import MAPPED_FIELDS
from acct2crm.rules.decide import CrmRecord, Fields


class CrmClient:
    """Async CRM client; every method raises only ``acct2crm.errors.CrmError``."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @classmethod
    def connect(cls, base_url: str, token: str, *, timeout_s: float = 10.0) -> CrmClient:
        http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        return cls(http)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def find_by_code(self, code: str) -> list[CrmRecord]:
        body = await self._request("GET", "/api/customers", params={"code": code})
        return [record_from_json(item) for item in body.get("items", [])]

    async def find_by_external_ref(self, ref: str) -> list[CrmRecord]:
        """Records the sync stamped as coming from the row ``ref`` names (rule R2d)."""
        body = await self._request("GET", "/api/customers", params={"external_ref": ref})
        return [record_from_json(item) for item in body.get("items", [])]

    async def get(self, crm_id: int) -> CrmRecord:
        return record_from_json(await self._request("GET", f"/api/customers/{crm_id}"))

    async def create(self, fields: Fields) -> CrmRecord:
        return record_from_json(await self._request("POST", "/api/customers", json=fields))

    async def patch(self, crm_id: int, fields: Fields) -> CrmRecord:
        body = await self._request("PATCH", f"/api/customers/{crm_id}", json=fields)
        return record_from_json(body)

    async def iter_all(self, page_size: int = 200) -> AsyncIterator[CrmRecord]:
        """Every CRM customer, page by page (seeds the CRM-code table)."""
        page: int | None = 1
        while page is not None:
            body = await self._request(
                "GET", "/api/customers", params={"page": page, "page_size": page_size}
            )
            for item in body.get("items", []):
                yield record_from_json(item)
            next_page = body.get("next_page")
            page = next_page if isinstance(next_page, int) else None

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise CrmRetryable(f"CRM timed out on {method} {url}") from exc
        except httpx.TransportError as exc:
            raise CrmRetryable(f"CRM unreachable on {method} {url}: {type(exc).__name__}") from exc
        return _check(response, f"{method} {url}")


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    status = response.status_code
    if status < 300:
        body = _json(response)
        if not isinstance(body, dict):
            raise CrmRetryable(f"CRM answered {what} with a non-object body", status=status)
        return body
    detail = _detail(response)
    if status == 429 or status >= 500:
        raise CrmRetryable(
            f"CRM answered {status} to {what}{detail}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in (401, 403):
        # a wrong token is the operator's to fix; waiting loses nothing, failing would
        raise CrmRetryable(f"CRM refused our credentials ({status}) on {what}", status=status)
    if status == 409:
        raise CrmConflict(f"CRM: code already exists ({what}){detail}", status=status)
    if status == 404:
        raise CrmNotFound(f"CRM: not found ({what})", status=status)
    if status == 422:
        field, reason = _first_error(response)
        raise CrmRejected(f"CRM rejected {field or 'the record'}: {reason}", field=field)
    raise CrmPermanent(f"CRM answered {status} to {what}{detail}", status=status)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    body = _json(response)
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if isinstance(body.get(key), str):
                return f": {body[key]}"
    return ""


def _first_error(response: httpx.Response) -> tuple[str | None, str]:
    body = _json(response)
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            first = errors[0]
            return (
                str(first["field"]) if first.get("field") is not None else None,
                str(first.get("reason", "invalid")),
            )
        if isinstance(body.get("detail"), str):
            return None, body["detail"]
    return None, response.text[:200] or "invalid"


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds, from either of its two forms."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def record_from_json(item: Mapping[str, Any]) -> CrmRecord:
    try:
        crm_id = int(item["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CrmRetryable("CRM answered a record without an id") from exc
    fields: Fields = {}
    for name in MAPPED_FIELDS:
        value = item.get(name)
        fields[name] = value if isinstance(value, str) or value is None else str(value)
    ref = item.get("external_ref")
    return CrmRecord(id=crm_id, fields=fields, external_ref=ref if isinstance(ref, str) else None)
