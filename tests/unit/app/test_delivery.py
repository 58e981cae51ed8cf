"""Sends are awaited: no offset counts as handled before the broker acknowledged its records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from acct2crm.app.delivery import Delivery
from acct2crm.app.ledger import OffsetLedger, RangeRead, ledger_key
from acct2crm.app.pipeline import ChangeRouter, Outputs
from acct2crm.app.steps import ChangeStep
from acct2crm.model.message import Message
from acct2crm.records.avro import command_type
from acct2crm.scope_file import ScopeWatcher
from tests.support.changes import row


class Broker:
    """A producer whose acknowledgements the test hands out one by one."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.acks: list[asyncio.Future[None]] = []

    async def produce(self, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        self.sent.append(value)
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


async def until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_the_ledger_waits_for_the_ack_and_a_refused_record_is_sent_again() -> None:
    broker, table = Broker(), dict[str, Any]()
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)

    delivery = Delivery("test", sleep=nap)
    send = delivery.sender(broker.produce)
    router = ChangeRouter(
        ScopeWatcher(Path("/nonexistent/scope.toml")), {}, Outputs("default", send, send, send)
    )

    async def nothing(topic: str, partition: int, start: int, end: int) -> RangeRead:
        return RangeRead(messages=[], reached=start)

    async def earliest(topic: str, partition: int) -> int:
        return 0

    step = ChangeStep(OffsetLedger(table, nothing, earliest), router, delivery)
    change = {"op": "c", "before": None, "after": row(1),
              "source": {"lsn": 12, "txId": 1, "ts_ms": 1}}
    running = asyncio.create_task(step([Message("changes", 0, 0, b"1",
                                                 json.dumps(change).encode())]))
    await until(lambda: len(broker.acks) == 1)
    await asyncio.sleep(0)
    assert table == {}, "the offset counted as handled before the broker acknowledged"
    broker.acks[0].set_exception(ConnectionError("broker went away"))
    await until(lambda: len(broker.acks) == 2)
    assert broker.sent[1] == broker.sent[0]  # the same command, sent again
    assert naps and delivery.state.reason is not None  # backed off, and status shows why
    assert table == {}
    broker.acks[1].set_result(None)
    await running
    assert table == {ledger_key("changes", 0): {"offset": 0}}
    assert command_type().decode(broker.sent[1])["code"] == "KH001"
    assert delivery.state.reason is None


async def test_a_send_that_raises_at_once_is_retried_too() -> None:
    calls: list[bytes] = []

    async def flaky(key: bytes | None, value: bytes) -> asyncio.Future[None]:
        calls.append(value)
        if len(calls) == 1:
            raise RuntimeError("producer not ready")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def nap(seconds: float) -> None:
        return None

    delivery = Delivery("test", sleep=nap)
    await delivery.sender(flaky)(b"k", b"v")
    await delivery.settle()
    assert calls == [b"v", b"v"]
