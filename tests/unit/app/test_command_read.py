"""A command is decoded once on its way from the command step to its sink."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from acct2crm.app.command_lanes import UNREADABLE, tenant_of_command
from acct2crm.app.command_read import ReadCommand, command_of, read_command
from acct2crm.errors import DecodeError
from acct2crm.model.message import Message
from acct2crm.records.avro import command_type
from tests.unit.app.test_lanes import COMMANDS, HeldCrm, Topic, Worker, command


async def test_each_command_is_decoded_once_from_its_step_to_its_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[bytes] = []
    avro = command_type()
    real = avro.decode

    def counting(data: bytes) -> dict[str, Any]:
        decoded.append(data)
        return real(data)

    monkeypatch.setattr(avro, "decode", counting)
    topic = Topic()
    written = topic.write(command(0, "a", 1, "A1"), command(1, "b", 1, "B1"),
                          command(2, "a", 2, "A2"))
    worker = Worker(topic, {"ledger": {}, "positions": {}}, {"a": HeldCrm(), "b": HeldCrm()})
    await worker.setup.step(written)
    await asyncio.wait_for(worker.setup.lanes.drained(), 5)
    assert sorted(worker.results) == [("a", "created"), ("a", "created"), ("b", "created")]
    assert sorted(decoded) == sorted(m.value or b"" for m in written)
    await worker.setup.lanes.stop_all()


def test_an_unreadable_command_carries_its_error_to_the_sink() -> None:
    read = read_command(Message(COMMANDS, 0, 4, b"7", b"garbage"))
    assert read.record is None
    assert isinstance(read.error, DecodeError)
    assert tenant_of_command(read) == UNREADABLE
    with pytest.raises(DecodeError) as raised:
        command_of(read)
    assert raised.value is read.error  # the reason the failed result gives is the first one


def test_a_read_command_is_still_the_message_kafka_holds() -> None:
    value = command(3, "acme", 7, "KH7").value or b""
    plain = Message(COMMANDS, 0, 3, b"7", value)
    read = read_command(plain)
    assert read.record is not None and read.record["tenant"] == "acme"
    assert read_command(read) is read  # never decoded a second time
    assert command_of(plain) == read.record  # a message nobody read is decoded on demand
    other = ReadCommand(COMMANDS, 0, 3, b"7", value)  # same bytes, no record
    assert read == other and hash(read) == hash(other)  # usable as a key, like any message
    assert (read.topic, read.partition, read.offset, read.key, read.value) == (
        plain.topic, plain.partition, plain.offset, plain.key, plain.value)
