"""Avro single-object encoding of the records acct2crm writes to Kafka.

Without a schema registry, each message starts with the marker ``C3 01`` and
the 8-byte CRC-64-AVRO fingerprint of the writer schema, so a reader knows
which schema wrote it and can resolve it against its own (compatible) one.
"""

from __future__ import annotations

import io
import json
from functools import cache
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from acct2crm.errors import DecodeError
from acct2crm.package_data import schema_text

MARKER = b"\xc3\x01"
# named types other schemas refer to, loaded first
_SHARED = ("position",)
# earlier versions of a schema whose messages may still sit on a topic after an upgrade
_EARLIER = {"command": ("command_v1",)}


@cache
def _named_types() -> dict[str, Any]:
    named: dict[str, Any] = {}
    for name in _SHARED:
        parse_schema(_load(name), named_schemas=named)
    return named


def _load(name: str) -> Any:
    return json.loads(schema_text(name))


class AvroType:
    """One record type: encodes with its schema, decodes any known writer schema."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.schema = parse_schema(_load(name), named_schemas=dict(_named_types()))
        canonical = to_parsing_canonical_form(self.schema)
        self.fingerprint = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        # the fingerprint is little-endian on the wire
        self.header = MARKER + self.fingerprint[::-1]
        self._writers: dict[bytes, Any] = {self.header[2:]: self.schema}
        for earlier in _EARLIER.get(name, ()):
            self.learn_writer(_load(earlier))

    def encode(self, record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self.header)
        fastavro.schemaless_writer(buffer, self.schema, record)
        return buffer.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) < 10 or data[:2] != MARKER:
            raise DecodeError(f"{self.name}: not an Avro single-object message")
        writer = self._writers.get(data[2:10])
        if writer is None:
            raise DecodeError(f"{self.name}: written by an unknown schema {data[2:10].hex()}")
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[10:]), writer, self.schema)
        except Exception as exc:  # a truncated or garbled body: fastavro raises anything
            raise DecodeError(f"{self.name}: unreadable body ({type(exc).__name__})") from exc
        if not isinstance(record, dict):
            raise DecodeError(f"{self.name}: decoded to {type(record).__name__}")
        return record

    def learn_writer(self, schema: Any) -> None:
        """Accept messages written by an older or newer compatible schema."""
        parsed = parse_schema(schema, named_schemas=dict(_named_types()))
        canonical = to_parsing_canonical_form(parsed)
        fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))[::-1]
        self._writers[fp] = parsed


@cache
def avro_type(name: str) -> AvroType:
    return AvroType(name)


def command_type() -> AvroType:
    return avro_type("command")


def result_type() -> AvroType:
    return avro_type("result")


def dead_letter_type() -> AvroType:
    return avro_type("dead_letter")


def crm_record_type() -> AvroType:
    return avro_type("crm_record")


def position_type() -> AvroType:
    return avro_type("position")


