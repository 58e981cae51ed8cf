"""The change agent routes a batch at once and waits for the broker once per batch.

What must still hold: no offset counts as handled before every record its
handling wrote is acknowledged (a refused record is sent again first), and a
command never overtakes an unacknowledged one of the same row or code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from acct2crm.app.command_order import CommandOrder, order_keys
from acct2crm.app.delivery import Delivery
from acct2crm.app.ledger import OffsetLedger, RangeRead, ledger_key
from acct2crm.app.pipeline import ChangeRouter, Outputs
from acct2crm.app.steps import ChangeStep
from acct2crm.model.message import Message
from acct2crm.records.avro import command_type
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.scope_file import ScopeWatcher
from tests.support.changes import change, row


class Broker:
    """A producer whose acknowledgements the test hands out one by one."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.acks: list[asyncio.Future[None]] = []

    async def produce(self, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        self.sent.append(value)
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]

    def commands(self) -> list[tuple[int, str, str]]:
        """(row, code, name) of every record sent, in send order."""
        decoded = [command_type().decode(value) for value in self.sent]
        return [(c["accounting_id"], c["code"], c["fields"]["name"]) for c in decoded]


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def _nothing(topic: str, partition: int, start: int, end: int) -> RangeRead:
    return RangeRead(messages=[], reached=start)


async def _earliest(topic: str, partition: int) -> int:
    return 0


async def _no_nap(seconds: float) -> None:
    return None


def _step(broker: Broker, table: dict[str, Any]) -> tuple[ChangeStep, Delivery]:
    delivery = Delivery("test", sleep=_no_nap)
    send = delivery.sender(broker.produce)
    router = ChangeRouter(
        ScopeWatcher(Path("/nonexistent/scope.toml")), {}, Outputs("default", send, send, send),
        before_command=CommandOrder(delivery).before_send,
    )
    return ChangeStep(OffsetLedger(table, _nothing, _earliest), router, delivery), delivery


def _insert(offset: int, id_: int, code: str) -> Message:
    body = {"op": "c", "before": None, "after": row(id_, code),
            "source": {"lsn": 100 + offset, "txId": offset, "ts_ms": 1}}
    return Message("changes", 0, offset, str(id_).encode(), json.dumps(body).encode())


def _rename_name(offset: int, id_: int, code: str, name: str) -> Message:
    body = {"op": "u", "before": row(id_, code), "after": row(id_, code, name=name),
            "source": {"lsn": 100 + offset, "txId": offset, "ts_ms": 1}}
    return Message("changes", 0, offset, str(id_).encode(), json.dumps(body).encode())


async def test_a_batch_is_sent_at_once_and_counted_only_after_every_ack() -> None:
    broker, table = Broker(), dict[str, Any]()
    step, delivery = _step(broker, table)
    batch = [_insert(0, 1, "KH001"), _insert(1, 2, "KH002"), _insert(2, 3, "KH003")]
    running = asyncio.create_task(step(batch))
    # all three commands leave before the broker acknowledged any of them
    await until(lambda: len(broker.acks) == 3)
    assert [c[:2] for c in broker.commands()] == [(1, "KH001"), (2, "KH002"), (3, "KH003")]
    broker.acks[0].set_result(None)
    broker.acks[1].set_exception(ConnectionError("broker went away"))
    broker.acks[2].set_result(None)
    await until(lambda: len(broker.acks) == 4)
    assert broker.sent[3] == broker.sent[1]  # the refused one, sent again
    await asyncio.sleep(0)
    assert table == {}, "the batch counted as handled before its refused record was acknowledged"
    assert delivery.state.reason is not None
    broker.acks[3].set_result(None)
    await running
    assert table == {ledger_key("changes", 0): {"offset": 2}}
    assert delivery.state.reason is None


async def test_a_command_of_the_same_row_waits_for_the_one_in_flight() -> None:
    broker, table = Broker(), dict[str, Any]()
    step, _ = _step(broker, table)
    batch = [_insert(0, 1, "KH001"), _insert(1, 2, "KH002"),
             _rename_name(2, 1, "KH001", "Second name")]
    running = asyncio.create_task(step(batch))
    await until(lambda: len(broker.acks) == 2)
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(broker.acks) == 2, "row 1's second command left before its first was acknowledged"
    broker.acks[0].set_exception(ConnectionError("refused"))  # row 1's insert must go first
    broker.acks[1].set_result(None)
    await until(lambda: len(broker.acks) == 3)
    broker.acks[2].set_result(None)  # the insert, sent again
    await until(lambda: len(broker.acks) == 4)
    broker.acks[3].set_result(None)
    await running
    assert broker.commands() == [
        (1, "KH001", "Customer KH001"), (2, "KH002", "Customer KH002"),
        (1, "KH001", "Customer KH001"), (1, "KH001", "Second name"),
    ]
    assert table == {ledger_key("changes", 0): {"offset": 2}}


async def test_a_command_taking_a_code_in_flight_waits_and_others_do_not() -> None:
    broker, table = Broker(), dict[str, Any]()
    step, _ = _step(broker, table)
    # row 3 takes the code row 1's insert still has in flight; row 2 is independent
    batch = [_insert(0, 1, "KH001"), _insert(1, 2, "KH002"), _insert(2, 3, "kh001")]
    running = asyncio.create_task(step(batch))
    await until(lambda: len(broker.acks) == 2)
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(broker.acks) == 2
    broker.acks[0].set_result(None)
    broker.acks[1].set_result(None)
    await until(lambda: len(broker.acks) == 3)
    broker.acks[2].set_result(None)
    await running
    assert [c[0] for c in broker.commands()] == [1, 2, 3]


def test_order_keys_name_the_row_and_every_code_touched() -> None:
    decided = classify(change("u", before=row(7, "A1"), after=row(7, "B2"), lsn=5), DEFAULT_SCOPE)
    assert isinstance(decided, SyncIntent)
    keys = order_keys(decided)
    assert f"{decided.tenant}:row:7" in keys
    assert len(keys) == 1 + len(decided.code_keys())


def test_order_keys_of_two_tenants_never_meet() -> None:
    decided = classify(change("u", before=row(7, "A1"), after=row(7, "B2"), lsn=5), DEFAULT_SCOPE)
    assert isinstance(decided, SyncIntent)
    other = dataclasses.replace(decided, tenant=decided.tenant + "_b")
    assert order_keys(decided).isdisjoint(order_keys(other))
