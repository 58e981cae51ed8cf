"""The CRM client over ``httpx.MockTransport``: each HTTP answer maps to one error class.

No network: a handler stands in for the CRM, so every status, header and
transport failure the client must translate is produced exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from acct2crm.crm.client import CrmClient
from acct2crm.crm.replies import parse_retry_after
from acct2crm.errors import (
    CrmConflict,
    CrmError,
    CrmNotFound,
    CrmPermanent,
    CrmRejected,
    CrmRetryable,
)

Handler = Callable[[httpx.Request], httpx.Response]
RECORD: dict[str, Any] = {
    "id": 7,
    "code": "KH001",
    "name": "Công ty Đức Hạnh",
    "tax_code": None,
    "address": None,
    "phone": "0900",
    "email": None,
    "contact_name": None,
    "branch_code": "HQ",
    "external_ref": "default:1",
    "created_at": "2026-11-29T00:00:00Z",
    "updated_at": "2026-11-29T00:00:00Z",
}


def client_for(handler: Handler) -> CrmClient:
    http = httpx.AsyncClient(
        base_url="http://crm.test", transport=httpx.MockTransport(handler)
    )
    return CrmClient(http)


def answering(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


# ----------------------------------------------------------------- 2xx


async def test_create_posts_the_fields_and_reads_the_record_back() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=RECORD)

    crm = client_for(handler)
    record = await crm.create({"code": "KH001", "name": "Công ty Đức Hạnh"})
    assert (seen[0].method, seen[0].url.path) == ("POST", "/api/customers")
    assert json.loads(seen[0].content) == {"code": "KH001", "name": "Công ty Đức Hạnh"}
    assert record.id == 7
    assert record.code == "KH001"
    assert record.fields["phone"] == "0900"
    assert record.external_ref == "default:1"
    await crm.aclose()


async def test_find_by_code_sends_the_code_as_a_query_parameter() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [RECORD]})

    [record] = await client_for(handler).find_by_code("kh 001")
    assert seen[0].url.params["code"] == "kh 001"
    assert record.id == 7


async def test_patch_addresses_the_record_by_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={**RECORD, "phone": "0911"})

    record = await client_for(handler).patch(7, {"phone": "0911"})
    assert (seen[0].method, seen[0].url.path) == ("PATCH", "/api/customers/7")
    assert record.fields["phone"] == "0911"


async def test_iter_all_follows_next_page_until_there_is_none() -> None:
    pages = {
        "1": {"items": [{**RECORD, "id": 1}], "next_page": 2},
        "2": {"items": [{**RECORD, "id": 2}], "next_page": None},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params["page"]])

    ids = [r.id async for r in client_for(handler).iter_all(page_size=1)]
    assert ids == [1, 2]


async def test_list_page_is_one_call_with_its_next_page_and_total() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params["page"] == "3":
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "slow"})
        body: dict[str, Any] = {"items": [{**RECORD, "id": 41}], "next_page": 5}
        if request.url.params["page"] == "4":
            body["total"] = 900
        return httpx.Response(200, json=body)

    client = client_for(handler)
    page = await client.list_page(4, 250)
    assert [r.id for r in page.items] == [41] and (page.next_page, page.total) == (5, 900)
    assert dict(seen[0].url.params) == {"page": "4", "page_size": "250"}
    assert (await client.list_page(5, 250)).total is None  # not every CRM tells
    with pytest.raises(CrmRetryable) as refused:  # the seeder asks this page again, alone
        await client.list_page(3, 250)
    assert refused.value.retry_after == 2.0 and len(seen) == 3


@pytest.mark.parametrize("body", [[RECORD], "text", {"code": "KH001"}])
async def test_a_2xx_without_a_usable_record_is_retryable(body: Any) -> None:
    with pytest.raises(CrmRetryable):
        await client_for(answering(200, body)).get(7)


# --------------------------------------------------------------- errors


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_wait_for_the_operator(status: int) -> None:
    with pytest.raises(CrmRetryable) as caught:
        await client_for(answering(status, {"detail": "bad token"})).get(7)
    assert caught.value.status == status
    assert not isinstance(caught.value, CrmPermanent)


async def test_404_is_not_found() -> None:
    with pytest.raises(CrmNotFound) as caught:
        await client_for(answering(404, {"detail": "customer 7 not found"})).get(7)
    assert caught.value.status == 404


async def test_409_is_a_conflict() -> None:
    body = {"detail": "code taken", "errors": [{"field": "code", "reason": "used by 3"}]}
    with pytest.raises(CrmConflict) as caught:
        await client_for(answering(409, body)).create({"code": "KH001"})
    assert caught.value.status == 409


async def test_422_is_rejected_with_the_field_and_reason() -> None:
    body = {"detail": "x", "errors": [{"field": "tax_code", "reason": "must be 10 digits"}]}
    with pytest.raises(CrmRejected) as caught:
        await client_for(answering(422, body)).create({"code": "KH001", "tax_code": "1"})
    assert caught.value.field == "tax_code"
    assert caught.value.status == 422
    assert "must be 10 digits" in str(caught.value)


async def test_422_with_only_a_detail_keeps_the_detail() -> None:
    with pytest.raises(CrmRejected) as caught:
        await client_for(answering(422, {"detail": "name is required"})).create({})
    assert caught.value.field is None
    assert "name is required" in str(caught.value)


async def test_400_fails_that_record_with_the_crms_detail() -> None:
    with pytest.raises(CrmRejected) as caught:
        await client_for(answering(400, {"detail": "malformed JSON"})).create({})
    assert caught.value.status == 400
    assert "malformed JSON" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retryable(status: int) -> None:
    with pytest.raises(CrmRetryable) as caught:
        await client_for(answering(status, {"detail": "down"})).get(7)
    assert caught.value.status == status
    assert caught.value.retry_after is None


async def test_503_carries_its_retry_after() -> None:
    handler = answering(503, {"detail": "maintenance"}, {"Retry-After": "1"})
    with pytest.raises(CrmRetryable) as caught:
        await client_for(handler).get(7)
    assert caught.value.retry_after == 1.0


async def test_429_with_retry_after_in_seconds() -> None:
    handler = answering(429, {"detail": "slow down"}, {"Retry-After": "3"})
    with pytest.raises(CrmRetryable) as caught:
        await client_for(handler).find_by_code("KH001")
    assert caught.value.status == 429
    assert caught.value.retry_after == 3.0


async def test_429_with_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    handler = answering(429, None, {"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(CrmRetryable) as caught:
        await client_for(handler).find_by_code("KH001")
    assert caught.value.retry_after is not None
    assert 27.0 <= caught.value.retry_after <= 30.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("0", 0.0), ("2.5", 2.5), ("-4", 0.0), ("soon", None)],
)
def test_retry_after_forms(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_a_retry_after_date_in_the_past_means_now() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    assert parse_retry_after(format_datetime(past, usegmt=True)) == 0.0


# ------------------------------------------------------------ transport


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=["read-timeout", "connect-timeout", "connect-error", "disconnected"],
)
async def test_transport_failures_are_retryable(failure: httpx.TransportError) -> None:
    with pytest.raises(CrmRetryable) as caught:
        await client_for(raising(failure)).create({"code": "KH001"})
    assert caught.value.__cause__ is failure
    assert caught.value.status is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 418, 422, 429, 500, 599])
async def test_every_error_status_is_one_of_ours(status: int) -> None:
    """No answer escapes as an httpx error or as a success."""
    with pytest.raises(CrmError):
        await client_for(answering(status, {"detail": "x"})).get(7)
