"""Reading Debezium envelopes: each kind of message, and every bad one as a DecodeError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acct2crm.debezium import decode_change
from acct2crm.errors import DecodeError
from acct2crm.rules.change import Change, Op

ROW = {"id": 7, "code": "KH001", "name": "Công ty A", "is_customer": True}
SOURCE = {"lsn": 1234, "txId": 55, "ts_ms": 1_700_000_000_000, "db": "accounting"}


def envelope(**overrides: Any) -> dict[str, Any]:
    return {"before": None, "after": ROW, "source": SOURCE, "op": "c", **overrides}


def encoded(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def test_an_insert_is_read_with_its_row_and_position() -> None:
    change = decode_change(b'{"id": 7}', encoded(envelope()), tenant="default", offset=9)
    assert isinstance(change, Change)
    assert (change.op, change.accounting_id, change.after, change.offset) == (
        Op.CREATE, 7, ROW, 9)
    assert (change.position.lsn, change.position.tx_id, change.position.ts_ms) == (
        1234, 55, 1_700_000_000_000)


def test_the_schema_wrapper_and_a_byte_order_mark_are_read_through() -> None:
    wrapped = encoded({"schema": {"type": "struct"}, "payload": envelope(op="u", before=ROW)})
    change = decode_change(None, b"\xef\xbb\xbf" + wrapped, tenant="default")
    assert change is not None and change.op is Op.UPDATE and change.before == ROW


@pytest.mark.parametrize("value", [
    None, b"",  # tombstones
    encoded({"ts_ms": 1}),  # heartbeat
    encoded({"databaseName": "accounting", "ddl": "ALTER TABLE ..."}),  # schema change
])
def test_messages_that_are_not_row_changes_decode_to_none(value: bytes | None) -> None:
    assert decode_change(None, value, tenant="default") is None


@pytest.mark.parametrize(("value", "reason"), [
    (b"\x00not json", "not JSON"),
    (b"\xff\xfe{}", "not JSON"),  # not UTF-8
    (b"[1, 2]", "a JSON list, not an object"),
    (encoded({"schema": {}, "payload": [1]}), "payload is not an object"),
    (encoded({"after": ROW}), "no 'op'"),
    (encoded(envelope(op="x")), "unknown Debezium op 'x'"),
    (encoded(envelope(op=["c"])), "unknown Debezium op ['c']"),
    (encoded(envelope(op="b")), "acct2crm's own"),
    (encoded(envelope(after=[1])), "'after' is not an object"),
    (encoded(envelope(source=[1])), "'source' is not an object"),
    (encoded(envelope(source={"lsn": "12"})), "no integer source.lsn"),
    (encoded(envelope(op="u", after=None, before=ROW)), "op=u change has no 'after' row"),
])
def test_each_bad_message_is_a_decode_error_with_its_reason(value: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as raised:
        decode_change(None, value, tenant="default")
    assert reason in str(raised.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["op", "before", "after", "source", "schema",
                                        "payload", "ts_ms"]), JSON)
       | JSON.map(lambda doc: {"op": "u", "after": doc, "source": {"lsn": 1}}))
def test_any_json_is_a_change_none_or_a_decode_error_never_another_exception(doc: Any) -> None:
    with contextlib.suppress(DecodeError):
        assert isinstance(decode_change(None, encoded(doc), tenant="default"), Change | None)


@given(st.binary(max_size=40))
def test_any_bytes_are_a_change_none_or_a_decode_error(value: bytes) -> None:
    with contextlib.suppress(DecodeError):
        assert isinstance(decode_change(value, value, tenant="default"), Change | None)
