"""The metrics wrapper around the CRM client hides none of its abilities."""

from __future__ import annotations

import json

import httpx

from acct2crm.crm.client import CrmClient
from acct2crm.crm.instrumented import InstrumentedCrm
from acct2crm.sink.ports import BatchCrmPort, Write, batch_limit


def client(batches: int) -> CrmClient:
    def answer(request: httpx.Request) -> httpx.Response:
        ops = json.loads(request.content)["operations"]
        results = [
            {"status": 201, "record": {"id": n + 1, **op["fields"], "external_ref": None}}
            for n, op in enumerate(ops)
        ]
        return httpx.Response(200, json={"results": results})

    http = httpx.AsyncClient(base_url="http://crm.test", transport=httpx.MockTransport(answer))
    return CrmClient(http, batch_limit=batches)


async def test_the_wrapper_keeps_the_batch_api_so_the_worker_batches() -> None:
    wrapped = InstrumentedCrm(client(100), "default")
    assert isinstance(wrapped, BatchCrmPort)
    assert batch_limit(wrapped) == 100
    [record] = await wrapped.write_batch([Write({"code": "A", "name": "n"})])
    assert not isinstance(record, Exception) and record.code == "A"
    await wrapped.aclose()


async def test_a_crm_without_batches_stays_without() -> None:
    wrapped = InstrumentedCrm(client(0), "default")
    assert batch_limit(wrapped) == 0
    await wrapped.aclose()
