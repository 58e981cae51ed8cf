"""Which updates of a batch may end in R2d, decided before the batch runs.

An R2d update writes the record naming its row, which sits under a code the
update does not name; the sink looks that record up ahead so its code joins
the update's lane (engine.py). An update can skip that look-up only when a
record it would write instead (R2a on K, R2b on K0) is certain to be there
when its turn comes: the table holds one, and no earlier change of the batch
may move it off that code. Only two writes move a record off a code: a
rename from it (R2b, the change's K0) and an R2d of the record found there
ahead; both name the code, so they share the update's lane and run first.
Pure: the table and the records found so far are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from acct2crm.rules.codes import code_key
from acct2crm.rules.decide import SyncIntent


def may_end_in_r2d(
    intents: Sequence[SyncIntent],
    held: Callable[[str], bool],
    found: Mapping[int, Sequence[str]],
) -> list[int]:
    """Indexes of the updates whose R2a/R2b target is not certain.

    ``held``: whether the table holds a record under a code key now.
    ``found``: by index, the code keys of the records already found ahead
    for that change (it may move them off those codes, by R2d).
    """
    vacated: set[str] = set()
    wanted: list[int] = []
    for index, intent in enumerate(intents):
        keys = intent.code_keys()
        if not intent.is_insert and not any(held(k) and k not in vacated for k in keys):
            wanted.append(index)
        if intent.previous_code is not None:
            vacated.add(code_key(intent.previous_code))
        vacated.update(found.get(index, ()))
    return wanted
