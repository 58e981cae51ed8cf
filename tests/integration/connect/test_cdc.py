"""Change data capture against the real stack: PostgreSQL -> Debezium -> the change topic.

What the worker relies on: every committed change arrives, with the whole old
row on UPDATE and DELETE (REPLICA IDENTITY FULL) and no TOAST placeholder.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import AccountingDb, ChangeEvent, ChangeTopicReader

pytestmark = pytest.mark.integration

UNAVAILABLE = "__debezium_unavailable_value"
MAPPED = ("code", "name", "tax_code", "address", "phone", "email", "contact_name", "branch_code")


def _for_row(row_id: int, op: str) -> Callable[[ChangeEvent], bool]:
    return lambda event: event.op == op and event.row.get("id") == row_id


def test_insert_arrives_as_create_with_the_row_in_after(
    accounting_db: AccountingDb, change_reader: ChangeTopicReader
) -> None:
    row = accounting_db.insert_customer(
        name="Công ty TNHH Minh Anh", tax_code="0101234567", phone="024 3826 1234",
        email="ketoan@minhanh.vn", contact_name="Trần Thị Hoa", branch_code="HN",
    )

    event = change_reader.wait_for(_for_row(row["id"], "c"))

    assert event.key == {"id": row["id"]}
    assert event.before is None
    assert event.after is not None
    for column in MAPPED:
        assert event.after[column] == row[column], column
    assert event.after["is_customer"] is True
    assert event.source["table"] == "customer"
    assert event.source["schema"] == "accounting"
    assert event.source["lsn"] and event.source["txId"]


def test_update_carries_the_full_old_row_in_before(
    accounting_db: AccountingDb, change_reader: ChangeTopicReader
) -> None:
    old = accounting_db.insert_customer(phone="0901000001", email="a@b.vn", branch_code="HCM")
    new_code = accounting_db.unique_code("U")

    accounting_db.update_customer(old["id"], code=new_code, name="Renamed")
    event = change_reader.wait_for(_for_row(old["id"], "u"))

    assert event.after is not None and event.before is not None
    assert event.after["code"] == new_code
    assert event.after["name"] == "Renamed"
    for column in MAPPED:  # the whole old row, not only the key: the rules need K0
        assert event.before[column] == old[column], column


def test_delete_arrives_with_the_old_row_and_no_tombstone(
    accounting_db: AccountingDb, change_reader: ChangeTopicReader
) -> None:
    row = accounting_db.insert_customer()
    accounting_db.delete_customer(row["id"])
    follow = accounting_db.insert_customer()  # a later change, to prove nothing came between

    events = change_reader.read_until(_for_row(follow["id"], "c"))

    deletes = [e for e in events if e.op == "d" and e.row.get("id") == row["id"]]
    assert len(deletes) == 1
    assert deletes[0].after is None
    assert deletes[0].before is not None
    assert deletes[0].before["code"] == row["code"]
    tombstones = [e for e in events if e.value is None and e.key == {"id": row["id"]}]
    assert tombstones == []


def test_update_leaving_a_long_address_untouched_carries_the_real_address(
    accounting_db: AccountingDb, change_reader: ChangeTopicReader
) -> None:
    # random text does not compress under the 2 kB TOAST threshold: stored out of line
    address = secrets.token_urlsafe(7700)[:10_240]
    row = accounting_db.insert_customer(address=address)
    stored = accounting_db.execute(
        "SELECT pg_column_size(address) AS size FROM accounting.customer WHERE id = %s",
        [row["id"]],
    )[0]["size"]
    assert stored > 2048, "the address must really be TOASTed for this test to mean anything"

    accounting_db.update_customer(row["id"], name="Only the name changes")
    event = change_reader.wait_for(_for_row(row["id"], "u"))

    assert event.after is not None and event.before is not None
    assert event.after["address"] == address
    assert event.before["address"] == address
    assert UNAVAILABLE not in str(event.value)
