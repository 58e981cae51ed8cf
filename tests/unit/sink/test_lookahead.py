"""Which updates of a batch are looked up ahead as possible R2d (sink/lookahead.py)."""

from __future__ import annotations

from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.sink.lookahead import may_end_in_r2d
from tests.support.changes import change, row


def update(id_: int, before: str, after: str, phone: str = "1") -> SyncIntent:
    result = classify(
        change("u", before=row(id_, before), after=row(id_, after, phone=phone)), DEFAULT_SCOPE
    )
    assert isinstance(result, SyncIntent)
    return result


def insert(id_: int, code: str) -> SyncIntent:
    result = classify(change("c", after=row(id_, code)), DEFAULT_SCOPE)
    assert isinstance(result, SyncIntent)
    return result


def held_by(*keys: str) -> set[str]:
    return set(keys)


def test_an_update_whose_codes_the_table_does_not_hold_is_looked_up() -> None:
    table = held_by("a")
    batch = [update(1, "A", "A"), update(2, "N", "N"), insert(3, "Z")]
    assert may_end_in_r2d(batch, table.__contains__, {}) == [1]


def test_an_earlier_rename_off_the_code_makes_a_later_update_uncertain() -> None:
    table = held_by("b")
    batch = [update(2, "B", "T"), update(1, "KH1", "B")]  # B leaves the record row 1 counted on
    assert may_end_in_r2d(batch, table.__contains__, {}) == [1]


def test_earlier_edits_that_keep_the_code_need_no_look_up() -> None:
    table = held_by("a")
    batch = [update(1, "A", "A", phone="1"), update(1, "A", "A", phone="2"), insert(2, "A")]
    assert may_end_in_r2d(batch, table.__contains__, {}) == []


def test_a_record_found_ahead_under_a_code_makes_later_updates_of_that_code_uncertain() -> None:
    table = held_by("a", "v")
    batch = [update(1, "N", "N"), update(2, "V", "V")]
    assert may_end_in_r2d(batch, table.__contains__, {}) == [0]
    # row 1's record was found under V: its R2d moves it off V, before row 2's edit
    assert may_end_in_r2d(batch, table.__contains__, {0: ("v",)}) == [0, 1]
    # only earlier changes count: a later one runs after, in the same lane
    assert may_end_in_r2d(list(reversed(batch)), table.__contains__, {1: ("v",)}) == [1]
