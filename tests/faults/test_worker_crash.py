"""SIGKILL the worker while hundreds of changes are in flight, then start it again.

The CRM must end exactly as the rules say: every row's final code held by
exactly one record, made by this sync, with no duplicate and no
``skipped_duplicate_code`` for records the sync itself created.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from acct2crm.rules.codes import code_key
from acct2crm.settings import Settings
from devstack import lifecycle
from devstack.paths import StackPaths
from devstack.processes import read_pid
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

ROWS = 120


def test_sigkill_mid_flight_loses_and_duplicates_nothing(stack_settings: Settings) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("K")
    pipe.faults(latency_ms=60)  # a CRM of realistic speed keeps changes in flight
    try:
        ids = pipe.many(
            [
                ("INSERT INTO accounting.customer (code, name, phone) VALUES (%s, %s, %s) "
                 "RETURNING id", (f"{tag}-{i:03}", f"Customer {i}", f"0{i:09}"))
                for i in range(ROWS)
            ]
        )
        final: dict[int, str] = {}
        second = []
        for n, row in enumerate(ids):  # second change per row: rename half, edit the rest
            if n % 2:
                final[row] = f"{tag}-R{n:03}"
                second.append(("UPDATE accounting.customer SET code = %s WHERE id = %s",
                               (final[row], row)))
            else:
                final[row] = f"{tag}-{n:03}"
                second.append(("UPDATE accounting.customer SET name = %s WHERE id = %s",
                               (f"Edited {n}", row)))
        pipe.many(second)
        applied = pipe.results(ids, 10, timeout_s=120, distinct=True)
        worker_pid = read_pid(StackPaths.of(stack_settings).pid_file("worker"))
        assert worker_pid is not None
        os.kill(worker_pid, signal.SIGKILL)
        for _ in range(100):
            if read_pid(StackPaths.of(stack_settings).pid_file("worker")) is None:
                break
            time.sleep(0.1)
        in_flight = 2 * ROWS - len({(r["accounting_id"], r["source"]["lsn"]) for r in applied})
        assert in_flight > ROWS // 2, "the kill came too late to test anything"
        lifecycle.up(stack_settings, crm_fault_injection=True, echo=lambda _line: None)
        results = pipe.results(ids, 2 * ROWS, timeout_s=300, distinct=True)
    finally:
        pipe.faults(latency_ms=0)
        pipe.close()

    assert not [r for r in results if r["action"] in ("skipped_duplicate_code", "failed")]
    records = pipe.crm_all(tag)
    keys = Counter(code_key(r["code"]) for r in records)
    assert max(keys.values()) == 1, "two CRM records share a code"
    by_ref = {r["external_ref"]: r for r in records}
    for n, row in enumerate(ids):
        record = by_ref[f"default:{row}"]
        assert record["code"] == final[row]
        if n % 2 == 0:
            assert record["name"] == f"Edited {n}"
    assert len(records) == ROWS  # renames moved records; none was created twice
