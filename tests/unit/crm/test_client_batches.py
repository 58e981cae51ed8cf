"""The CRM client's batch calls over ``httpx.MockTransport``: one answer per item."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from acct2crm.crm.client import CrmClient
from acct2crm.errors import (
    CrmConflict,
    CrmMisconfigured,
    CrmNotFound,
    CrmPermanent,
    CrmRejected,
    CrmRetryable,
)
from acct2crm.model.crm import CrmRecord
from acct2crm.sink.ports import Write, batch_limit
from tests.unit.crm.test_client import RECORD


def client_answering(status: int, body: Any, seen: list[httpx.Request]) -> CrmClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body, headers={"Retry-After": "2"})

    return CrmClient(httpx.AsyncClient(base_url="http://crm.test",
                                       transport=httpx.MockTransport(handler)))


async def test_each_item_gets_the_single_calls_answer() -> None:
    seen: list[httpx.Request] = []
    results = [
        {"status": 201, "record": RECORD},
        {"status": 409, "detail": "code exists", "existing_id": 3},
        {"status": 422, "detail": "invalid", "errors": [{"field": "email", "reason": "bad"}]},
        {"status": 404, "detail": "no customer"},
        {"status": 200, "record": {**RECORD, "id": 8}},
        {"status": 418, "detail": "odd"},
    ]
    crm = client_answering(200, {"results": results}, seen)
    writes = [Write({"code": "A"}), Write({"code": "B"}), Write({"code": "C"}),
              Write({"name": "x"}, 99), Write({"name": "y"}, 8), Write({"code": "Z"})]
    answers = await crm.write_batch(writes)
    assert isinstance(answers[0], CrmRecord) and answers[0].id == 7
    assert isinstance(answers[1], CrmConflict)
    assert isinstance(answers[2], CrmRejected) and answers[2].field == "email"
    assert isinstance(answers[3], CrmNotFound)
    assert isinstance(answers[4], CrmRecord) and answers[4].id == 8
    assert isinstance(answers[5], CrmPermanent)
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/api/customers/batch"
    assert body["operations"][0] == {"op": "create", "fields": {"code": "A"}}
    assert body["operations"][3] == {"op": "update", "id": 99, "fields": {"name": "x"}}


async def test_missing_results_are_sent_again_not_taken_as_done() -> None:
    crm = client_answering(200, {"results": [{"status": 201, "record": RECORD}]}, [])
    answers = await crm.write_batch([Write({"code": "A"}), Write({"code": "B"})])
    assert isinstance(answers[0], CrmRecord)
    assert isinstance(answers[1], CrmRetryable)


@pytest.mark.parametrize("status", [429, 502, 503])
async def test_a_whole_batch_failure_raises_retryable(status: int) -> None:
    crm = client_answering(status, {"detail": "busy"}, [])
    with pytest.raises(CrmRetryable) as caught:
        await crm.write_batch([Write({"code": "A"})])
    assert caught.value.retry_after == 2.0


async def test_a_crm_without_the_batch_route_is_a_configuration_error() -> None:
    crm = client_answering(404, {"detail": "Not Found"}, [])
    with pytest.raises(CrmMisconfigured):
        await crm.write_batch([Write({"code": "A"})])


async def test_look_up_of_many_codes_is_one_call() -> None:
    seen: list[httpx.Request] = []
    crm = client_answering(200, {"items": [RECORD]}, seen)
    found = await crm.find_by_codes(["KH001", "KH002"])
    assert [r.id for r in found] == [7]
    assert seen[0].url.params["codes"] == "KH001,KH002"


def test_the_client_declares_batches_and_can_be_told_it_has_none() -> None:
    http = httpx.AsyncClient(base_url="http://crm.test")
    assert batch_limit(CrmClient(http)) == 100
    assert batch_limit(CrmClient(http, batch_limit=0)) == 0
