"""A command message decoded once, for its lane and for its sink.

The lane that holds a command is chosen by the record's tenant, and the sink
applies the record. Decoding it in both places cost ~9 us a command twice
(the second decode was 3% of the worker's samples in a profiled burst). So
the command step reads each message once, on the way to the lanes, and the
record (or why it could not be read) travels with the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acct2crm.errors import DecodeError
from acct2crm.model.message import Message
from acct2crm.records.avro import command_type


@dataclass(frozen=True)
class ReadCommand(Message):
    """A command message with its record, or the error that reading it met."""

    # not part of equality or the hash: the message is still the bytes Kafka holds
    record: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    error: DecodeError | None = field(default=None, compare=False, repr=False)


def read_command(message: Message) -> ReadCommand:
    """Decode once; a message that is already read is returned as it is."""
    if isinstance(message, ReadCommand):
        return message
    record: dict[str, Any] | None = None
    error: DecodeError | None = None
    try:
        record = command_type().decode(message.value or b"")
    except DecodeError as exc:
        error = exc
    return ReadCommand(message.topic, message.partition, message.offset, message.key,
                       message.value, record=record, error=error)


def command_of(message: Message) -> dict[str, Any]:
    """The command record of a message, decoding it only if nobody has yet."""
    read = read_command(message)
    if read.record is None:
        raise read.error or DecodeError("command: no record")
    return read.record
