"""How the CRM's answers are read: status codes to the error hierarchy, records,
batch items, ``Retry-After``; pure functions over httpx responses.

Which status means what (retry, wait for the operator, fail the record) is
drawn in ``acct2crm.errors``.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import httpx

from acct2crm.errors import (
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
from acct2crm.sink.ports import ItemResult, Write


def check_response(response: httpx.Response, what: str, *, listing: bool = False) -> None:
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


def written_record(response: httpx.Response) -> CrmRecord | None:
    """The record a write answered with, or None (204, empty or record-less body)."""
    body = json_body(response)
    if isinstance(body, dict) and body.get("id") is not None:
        return record_from_json(body)
    return None


def id_from_location(location: str | None) -> int | None:
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


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    body = json_body(response)
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if isinstance(body.get(key), str):
                return f": {body[key]}"
    return ""


def _first_error(response: httpx.Response) -> tuple[str | None, str]:
    body = json_body(response)
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
