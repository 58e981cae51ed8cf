"""With many partitions, a table write made outside a stream (seeding, the idle read-back)
goes to the partition its key belongs to, not nowhere."""

from __future__ import annotations

import pytest

from acct2crm.app.table_partitions import TablePartitions
from acct2crm.model.keys import code_entry_key, offset_key, row_key, tenant_offset_key


def test_a_ledger_key_names_its_partition() -> None:
    place = TablePartitions(ledger=True)
    assert place(offset_key("acct2crm.commands", 7)) == 7
    assert place(offset_key("acct2crm.accounting.customer", 0)) == 0
    # how far one tenant's lane got in a partition (lanes.py) is kept in that partition too
    assert place(tenant_offset_key("acct2crm.commands", 7, "acme")) == 7


def test_a_tenant_key_goes_to_its_tenants_partition() -> None:
    place = TablePartitions()
    place.tenant_partition = {"acme": 5, "default": 2}.get
    assert place(code_entry_key("acme", "C-1")) == 5
    assert place(row_key("default", 12)) == 2


def test_a_key_of_no_known_tenant_is_refused_as_faust_refuses_it() -> None:
    place = TablePartitions()
    with pytest.raises(TypeError):
        place(row_key("ghost", 1))
    with pytest.raises(TypeError):
        place("no separator")
