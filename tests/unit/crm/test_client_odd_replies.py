"""The CRM client's reading of odd replies, through httpx.MockTransport.

Each reply class ends in one of: a record (success, re-read when the reply
has none), a wait (retryable; a misconfiguration shows as such), or that
record's failure (permanent).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from acct2crm.crm.client import CrmClient
from acct2crm.errors import (
    CrmMisconfigured,
    CrmNotFound,
    CrmPermanent,
    CrmRejected,
    CrmRetryable,
)
from acct2crm.sink.pacing import RetryPolicy, WaitState, call_with_retry

RECORD = {
    "id": 42,
    "code": "KH042",
    "name": "Customer KH042",
    "tax_code": None,
    "address": None,
    "phone": "0901",
    "email": None,
    "contact_name": None,
    "branch_code": "HQ",
    "external_ref": "default:7",
    "created_at": "2026-11-29T00:00:00.000000Z",
    "updated_at": "2026-11-29T00:00:01.000000Z",
}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that logs every request and answers by rule."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, str(request.url.copy_with(query=None))))
        return self.answer(request)

    def client(self) -> CrmClient:
        transport = httpx.MockTransport(self)
        return CrmClient(httpx.AsyncClient(base_url="https://crm.test", transport=transport))


def by_method(**answers: httpx.Response) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        return answers[request.method]

    return answer


# ------------------------------------------------------------ 2xx without a record


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(204),
        httpx.Response(200, content=b""),
        httpx.Response(200, text="OK"),
        httpx.Response(200, json={"status": "accepted"}),
    ],
    ids=["204", "200-empty", "200-text", "200-no-record"],
)
async def test_patch_answered_without_a_record_succeeds_and_rereads_it(
    reply: httpx.Response,
) -> None:
    crm = Recorder(by_method(PATCH=reply, GET=httpx.Response(200, json=RECORD)))
    record = await crm.client().patch(42, {"phone": "0901"})
    assert record.id == 42 and record.fields["phone"] == "0901"
    assert crm.requests == [
        ("PATCH", "https://crm.test/api/customers/42"),
        ("GET", "https://crm.test/api/customers/42"),
    ]


async def test_create_answered_without_a_record_rereads_it_from_location() -> None:
    created = httpx.Response(201, headers={"Location": "/api/customers/42"})
    crm = Recorder(by_method(POST=created, GET=httpx.Response(200, json=RECORD)))
    record = await crm.client().create({"code": "KH042", "name": "x"})
    assert record.id == 42
    assert crm.requests[-1] == ("GET", "https://crm.test/api/customers/42")


async def test_create_answered_without_record_nor_location_finds_it_by_code() -> None:
    listed = httpx.Response(200, json={"items": [RECORD]})
    crm = Recorder(by_method(POST=httpx.Response(204), GET=listed))
    record = await crm.client().create({"code": "kh042 ", "name": "x"})
    assert record.id == 42
    assert crm.requests[-1] == ("GET", "https://crm.test/api/customers")


async def test_create_with_nothing_to_show_for_it_is_retried() -> None:
    crm = Recorder(
        by_method(POST=httpx.Response(204), GET=httpx.Response(200, json={"items": []}))
    )
    with pytest.raises(CrmRetryable) as caught:
        await crm.client().create({"code": "KH042", "name": "x"})
    assert not isinstance(caught.value, CrmMisconfigured)


async def test_a_read_answered_with_html_is_a_configuration_wait() -> None:
    crm = Recorder(lambda r: httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(CrmMisconfigured):
        await crm.client().find_by_code("KH042")


# ------------------------------------------------------------ redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_a_configuration_wait_and_is_not_followed(status: int) -> None:
    where = "https://login.example.com/sso?session=secret-value"
    crm = Recorder(lambda r: httpx.Response(status, headers={"Location": where}))
    with pytest.raises(CrmMisconfigured) as caught:
        await crm.client().patch(42, {"phone": "0901"})
    assert isinstance(caught.value, CrmRetryable)  # waits; never dead-letters the change
    assert caught.value.status == status
    assert "https://login.example.com/sso" in str(caught.value)
    assert "secret-value" not in str(caught.value)
    assert crm.requests == [("PATCH", "https://crm.test/api/customers/42")]


async def test_connect_does_not_follow_redirects() -> None:
    client = CrmClient.connect("https://crm.test", "token")
    try:
        assert client._http.follow_redirects is False
    finally:
        await client.aclose()


async def test_a_redirect_shows_as_a_configuration_wait_until_it_is_fixed() -> None:
    answers = [httpx.Response(302, headers={"Location": "https://elsewhere/"})] * 2
    answers.append(httpx.Response(200, json={"items": [RECORD]}))
    crm = Recorder(lambda r: answers.pop(0))
    client = crm.client()
    state = WaitState()
    seen: list[tuple[str | None, str | None]] = []

    async def sleep(delay: float) -> None:
        seen.append((state.kind, state.reason))

    found = await call_with_retry(
        lambda: client.find_by_code("KH042"), RetryPolicy(0.001, 0.001), state, sleep=sleep
    )
    assert [r.id for r in found] == [42]
    assert [kind for kind, _ in seen] == ["configuration", "configuration"]
    assert all("302" in (reason or "") for _, reason in seen)
    assert state.kind is None and state.reason is None


# ------------------------------------------------------------ 4xx


async def test_400_is_that_records_failure() -> None:
    body = {"detail": "bad", "errors": [{"field": "phone", "reason": "not a phone"}]}
    crm = Recorder(lambda r: httpx.Response(400, json=body))
    with pytest.raises(CrmRejected) as caught:
        await crm.client().create({"code": "KH042", "name": "x"})
    assert not isinstance(caught.value, CrmRetryable)
    assert caught.value.status == 400 and caught.value.field == "phone"
    assert "not a phone" in str(caught.value)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
async def test_timeouts_and_overload_are_retried(status: int) -> None:
    crm = Recorder(lambda r: httpx.Response(status, headers={"Retry-After": "2"}))
    with pytest.raises(CrmRetryable) as caught:
        await crm.client().get(42)
    assert not isinstance(caught.value, CrmMisconfigured)
    assert caught.value.retry_after == 2.0


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_a_configuration_wait(status: int) -> None:
    crm = Recorder(lambda r: httpx.Response(status, json={"detail": "no"}))
    with pytest.raises(CrmMisconfigured):
        await crm.client().find_by_external_ref("default:7")


async def test_404_on_the_customer_list_means_a_wrong_url_not_a_lost_record() -> None:
    crm = Recorder(lambda r: httpx.Response(404, json={"detail": "Not Found"}))
    client = crm.client()
    with pytest.raises(CrmMisconfigured):
        await client.find_by_code("KH042")
    with pytest.raises(CrmNotFound):
        await client.get(42)


@pytest.mark.parametrize("status", [410, 413, 415])
async def test_other_client_errors_fail_the_record(status: int) -> None:
    crm = Recorder(lambda r: httpx.Response(status, json={"detail": "no"}))
    with pytest.raises(CrmPermanent) as caught:
        await crm.client().patch(42, {"name": "x"})
    assert caught.value.status == status


async def test_external_ref_lookup_asks_the_crm_by_ref() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.params["external_ref"] == "default:7"
        return httpx.Response(200, json={"items": [RECORD]})

    crm = Recorder(answer)
    [record] = await crm.client().find_by_external_ref("default:7")
    assert record.external_ref == "default:7"

