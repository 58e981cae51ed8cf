"""Which dead letters a re-drive takes, and what a letter says about its row."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from acct2crm.dlq import DeadLetter, _describe, choose
from acct2crm.errors import StackError
from acct2crm.records.avro import command_type
from acct2crm.records.convert import command_record
from acct2crm.rules.change import Op, Position
from acct2crm.rules.decide import SyncIntent
from acct2crm.settings import Settings
from tests.support.changes import row


def letter(offset: int, redriven: bool = False) -> DeadLetter:
    return DeadLetter(
        offset=offset, tenant="default", accounting_id=offset, code=f"C{offset}", op="c",
        lsn=100 + offset, topic="acct2crm.commands", error="CrmRejected", reason="422",
        failed_at="2026-11-30T00:00:00", redriven={"at": 1} if redriven else None,
    )


def test_all_takes_only_the_letters_never_redriven() -> None:
    letters = [letter(0, redriven=True), letter(1), letter(2)]
    assert [x.offset for x in choose(letters, None)] == [1, 2]


def test_offsets_take_those_named_redriven_or_not() -> None:
    letters = [letter(0, redriven=True), letter(1)]
    assert [x.offset for x in choose(letters, [1, 0, 1])] == [0, 1]
    with pytest.raises(StackError, match="offset"):
        choose(letters, [7])


def _dead(topic: str, key: bytes | None, value: bytes | None) -> dict[str, Any]:
    return {"topic": topic, "key": key, "value": value, "error": "E", "reason": "why",
            "failed_at": datetime(2026, 11, 30, tzinfo=UTC)}


def test_a_letter_names_its_row_code_and_position_from_what_it_kept() -> None:
    settings = Settings()
    change = {"op": "u", "before": None, "after": row(7, ""),
              "source": {"lsn": 4242, "txId": 1, "ts_ms": 1}}
    from_change = _describe(settings, 3, _dead(settings.change_topic, b'{"id": 7}',
                                               json.dumps(change).encode()))
    assert (from_change.accounting_id, from_change.op, from_change.lsn) == (7, "u", 4242)
    intent = SyncIntent(tenant="t2", accounting_id=9, op=Op.CREATE, code="KH9",
                        previous_code=None, fields={"code": "KH9"}, position=Position(lsn=77))
    value = command_type().encode(command_record(intent, 12))
    from_command = _describe(settings, 4, _dead(settings.commands_topic, b"9", value))
    assert (from_command.tenant, from_command.accounting_id, from_command.code,
            from_command.op, from_command.lsn) == ("t2", 9, "KH9", "c", 77)
    unreadable = _describe(settings, 5, _dead(settings.change_topic, None, b"not json"))
    assert (unreadable.accounting_id, unreadable.lsn) == (None, None)
