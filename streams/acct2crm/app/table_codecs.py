"""Avro codecs for the worker's table values, registered with Faust by name.

The tables' changelogs are Kafka topics the project writes, so their values
use the schemas in ``schemas/`` like every other record (single-object
encoding: a reader can tell which schema wrote each value).
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from acct2crm.records.avro import AvroType, avro_type


class AvroValueCodec(codecs.Codec):
    def __init__(self, avro: AvroType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._avro = avro

    def _dumps(self, s: Any) -> bytes:
        return self._avro.encode(s)

    def _loads(self, s: bytes) -> Any:
        return self._avro.decode(s)


CRM_CODE_ENTRY = "acct2crm-crm-code-entry"
POSITION = "acct2crm-position"
HANDLED_OFFSET = "acct2crm-handled-offset"


def register_table_codecs() -> None:
    codecs.register(CRM_CODE_ENTRY, AvroValueCodec(avro_type("crm_record")))
    codecs.register(POSITION, AvroValueCodec(avro_type("position")))
    codecs.register(HANDLED_OFFSET, AvroValueCodec(avro_type("table_offset")))
