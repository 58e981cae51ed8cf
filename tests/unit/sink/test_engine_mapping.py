"""The sink with an operator's field mapping: idempotence and no-op suppression still hold."""

from __future__ import annotations

import dataclasses
import tomllib

from acct2crm.rules.change import Action, Change
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.mapping import FieldMapping, parse_mapping
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import RetryPolicy
from tests.support.changes import change, row
from tests.support.memory_crm import MemoryCrm

MAPPING: FieldMapping = parse_mapping(tomllib.loads("""
[[field]]
crm = "code"
column = "code"

[[field]]
crm = "name"
column = "name"
transform = "upper"

[[field]]
crm = "contact_name"
constant = "Accounts desk"

[[field]]
crm = "branch_code"
column = "branch_code"
create_only = true
"""))


def intent(c: Change) -> SyncIntent:
    result = classify(c, DEFAULT_SCOPE, mapping=MAPPING)
    assert isinstance(result, SyncIntent), result
    return result


def engine_for(crm: MemoryCrm, positions: dict[str, object]) -> SinkEngine:
    cache = CodeCache({}, "default")
    cache.mark_seeded()
    return SinkEngine(crm, cache, positions, retry=RetryPolicy(base_s=0.001, cap_s=0.005))


async def test_a_custom_mapping_replayed_writes_nothing_and_keeps_sales_fields() -> None:
    crm = MemoryCrm()
    positions: dict[str, object] = {}
    history = [
        intent(change("c", after=row(1, "KH001", branch_code="HN"), lsn=10)),
        intent(change("u", before=row(1, "KH001", branch_code="HN"),
                      after=row(1, "KH001", name="An", branch_code="DN"), lsn=20)),
    ]
    first = await engine_for(crm, positions).apply_batch(history[:1])
    assert [a.action for a in first] == [Action.CREATED]
    [record] = crm.records.values()
    assert record.fields["contact_name"] == "Accounts desk"
    assert record.fields["branch_code"] == "HN"
    # sales move the customer; the next accounting edit leaves their branch alone
    crm.records[record.id] = dataclasses.replace(
        record, fields={**record.fields, "branch_code": "SALES"}
    )
    second = await engine_for(crm, positions).apply_batch(history[1:])
    assert [a.action for a in second] == [Action.UPDATED]
    [record] = crm.records.values()
    assert (record.fields["name"], record.fields["branch_code"]) == ("AN", "SALES")
    patches = [call for call in crm.calls if call[0] == "patch"]
    assert len(patches) == 1 and "branch_code" not in patches[0][1][1]  # type: ignore[index]

    # the whole history again (a replay, a fresh cache): no write, nothing changes
    writes = crm.writes
    again = await engine_for(crm, positions).apply_batch(history)
    assert [a.action for a in again] == [Action.UNCHANGED, Action.UNCHANGED]
    assert crm.writes == writes
    # without the positions (a lost table) the CRM's own values still suppress the writes
    fresh = await engine_for(crm, {}).apply_batch(history[1:])
    assert [a.action for a in fresh] == [Action.UNCHANGED]
    assert crm.writes == writes
