"""The CRM's REST API (docs/contract.md) over httpx, errors mapped to our hierarchy.

The HTTP client is injected: httpx ``MockTransport`` in unit tests, the real
reference CRM in integration tests, a real CRM in production.
"""

from __future__ import annotations

import email.utils
import ipaddress
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from acct2crm.errors import (
    ConfigError,
    CrmConflict,
    CrmError,
    CrmMisconfigured,
    CrmNotFound,
    CrmPermanent,
    CrmRejected,
    CrmRetryable,
)
from acct2crm.model.crm import CrmRecord, Fields
from acct2crm.rules.change import MAPPED_FIELDS
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
        record = _written_record(response)
        if record is not None:
            return record
        return await self._reread_created(response, fields)

    async def patch(self, crm_id: int, fields: Fields) -> CrmRecord:
        response = await self._send("PATCH", f"/api/customers/{crm_id}", json=fields)
        record = _written_record(response)
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
        body = _json(response)
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
        created_id = _id_from_location(response.headers.get("Location"))
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
        body = _json(response)
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
        _check(response, f"{method} {url}", listing=listing)
        return response


def check_crm_url(url: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse a CRM URL that would carry the bearer token in clear over a network.

    ``http`` is accepted for loopback hosts (the local stack) and, only when
    the operator says so (setting ``crm_allow_insecure_http``), for others,
    e.g. a private container network.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"crm_url {url!r} is not a URL: {exc}") from exc
    if parsed.scheme == "https":
        return
    if parsed.scheme != "http" or not parsed.host:
        raise ConfigError(f"crm_url must be an http(s) URL with a host, not {url!r}")
    if _is_loopback(parsed.host) or allow_insecure_http:
        return
    raise ConfigError(
        f"crm_url {url} is plain http to a host other than this machine: the CRM token "
        "would travel in clear. Use https, or set crm_allow_insecure_http = true "
        "(ACCT2CRM_CRM_ALLOW_INSECURE_HTTP=true) if that network is private."
    )


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check(response: httpx.Response, what: str, *, listing: bool = False) -> None:
    """Raise the error a non-2xx answer means; see ``acct2crm.errors`` for the classes.

    ``listing``: ``what`` addresses the customer collection, so a 404 means
    the CRM has no such API at ``crm_url`` (configuration), not a lost record.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = _detail(response)
    if status in (408, 425, 429) or status >= 500:
        raise CrmRetryable(
            f"CRM answered {status} to {what}{detail}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if 300 <= status < 400:
        where = _without_query(response.headers.get("Location"))
        raise CrmMisconfigured(
            f"CRM redirected {what} ({status}) to {where}; set crm_url to the API's own "
            "address (redirects are not followed: they could carry the token elsewhere)",
            status=status,
        )
    if status in (401, 403):
        # a wrong token is the operator's to fix; waiting loses nothing, failing would
        raise CrmMisconfigured(f"CRM refused our credentials ({status}) on {what}", status=status)
    if status == 405 or (status == 404 and listing):
        raise CrmMisconfigured(
            f"CRM answered {status} to {what}: no customer API at crm_url", status=status
        )
    if status == 409:
        raise CrmConflict(f"CRM: code already exists ({what}){detail}", status=status)
    if status == 404:
        raise CrmNotFound(f"CRM: not found ({what})", status=status)
    if status in (400, 422):
        # 400: the CRM could not take this record or query as sent; it is that
        # change's failure (dead letter), not a reason to stop the line
        field, reason = _first_error(response)
        raise CrmRejected(
            f"CRM rejected {field or 'the record'} ({status}): {reason}",
            field=field,
            status=status,
        )
    raise CrmPermanent(f"CRM answered {status} to {what}{detail}", status=status)


def item_result(entry: Any, write: Write) -> ItemResult:
    """One batch item's answer as the record written or the single call's error."""
    what = "batch create" if write.crm_id is None else f"batch update of {write.crm_id}"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("status"), int):
        # nothing to go by: send it again (a create then meets 409 and decides from the CRM)
        return CrmRetryable(f"CRM answered no result for a {what}")
    status: int = entry["status"]
    if 200 <= status < 300:
        record = entry.get("record")
        if isinstance(record, Mapping) and record.get("id") is not None:
            return record_from_json(record)
        return CrmRetryable(f"CRM accepted a {what} without the record")
    detail = f": {entry['detail']}" if isinstance(entry.get("detail"), str) else ""
    error: CrmError
    if status == 409:
        error = CrmConflict(f"CRM: code already exists ({what}){detail}", status=status)
    elif status == 404:
        error = CrmNotFound(f"CRM: not found ({what})", status=status)
    elif status in (400, 422):
        field, reason = _first_error_of(entry, detail.removeprefix(": ") or "invalid")
        error = CrmRejected(
            f"CRM rejected {field or 'the record'} ({status}): {reason}", field=field,
            status=status,
        )
    elif status in (408, 425, 429) or status >= 500:
        error = CrmRetryable(f"CRM answered {status} to a {what}{detail}", status=status)
    else:
        error = CrmPermanent(f"CRM answered {status} to a {what}{detail}", status=status)
    return error


def _first_error_of(body: Mapping[str, Any], fallback: str) -> tuple[str | None, str]:
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        first = errors[0]
        field = str(first["field"]) if first.get("field") is not None else None
        return field, str(first.get("reason", "invalid"))
    return None, fallback


def _written_record(response: httpx.Response) -> CrmRecord | None:
    """The record a write answered with, or None (204, empty or record-less body)."""
    body = _json(response)
    if isinstance(body, dict) and body.get("id") is not None:
        return record_from_json(body)
    return None


def _id_from_location(location: str | None) -> int | None:
    """The id at the end of a ``Location`` such as ``/api/customers/42``."""
    if not location:
        return None
    try:
        last = httpx.URL(location).path.rstrip("/").rsplit("/", 1)[-1]
    except httpx.InvalidURL:
        return None
    return int(last) if last.isdigit() else None


def _without_query(location: str | None) -> str:
    """Where a redirect points, without query or user info (they may carry secrets)."""
    if not location:
        return "an unnamed location"
    try:
        return str(httpx.URL(location).copy_with(query=None, fragment=None, userinfo=b""))
    except httpx.InvalidURL:
        return "an invalid location"


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
