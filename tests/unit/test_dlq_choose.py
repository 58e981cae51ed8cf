"""Which dead letters a re-drive takes."""

from __future__ import annotations

import pytest

from acct2crm.dlq import DeadLetter, choose
from acct2crm.errors import StackError


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
