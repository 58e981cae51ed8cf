"""SIGKILL the worker while CRM writes are in progress, then start it again.

The kill is made to land between a CRM write and its recording: the CRM is
slowed down (``latency_ms``) so writes take a while, the worker is killed as
soon as the CRM has accepted some of this test's writes, and the test then
proves that the CRM holds writes whose results were never published. After
the restart the CRM must end exactly as the rules say: every row's final code
held by exactly one record, made by this sync, one create per row (none made
twice), and no ``skipped_duplicate_code`` for records the sync itself created.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

import pytest

from acct2crm.settings import Settings
from devstack import lifecycle
from devstack.paths import StackPaths
from devstack.processes import read_pid
from tests.support.memory_crm import match_key
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

ROWS = 120
LATENCY_MS = 150
# kill once every insert and some second changes reached the CRM: a redelivered
# insert then meets a record already renamed or edited after it
WRITES_BEFORE_KILL = ROWS + ROWS // 4


def worker_pid(settings: Settings) -> int | None:
    return read_pid(StackPaths.of(settings).pid_file("worker"))


def start_worker(settings: Settings) -> None:
    lifecycle.up(settings, crm_fault_injection=True, echo=lambda _line: None)


def ours(pipe: Pipeline, since: int, tag: str) -> list[dict[str, Any]]:
    return [w for w in pipe.crm_writes_since(since) if w["code"].startswith(tag)]


def test_sigkill_between_crm_write_and_its_result_loses_and_duplicates_nothing(
    stack_settings: Settings,
) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("K")
    since = pipe.crm_write_seq()
    pipe.faults(latency_ms=LATENCY_MS)  # every CRM call takes a while: writes are in flight
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

        deadline = time.monotonic() + 120
        while len(ours(pipe, since, tag)) < WRITES_BEFORE_KILL:
            assert time.monotonic() < deadline, "the worker never started writing"
            time.sleep(0.05)
        pid = worker_pid(stack_settings)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while worker_pid(stack_settings) is not None:
            assert time.monotonic() < deadline, "the killed worker still runs"
            time.sleep(0.1)
        time.sleep(3 * LATENCY_MS / 1000 + 1)  # calls already sent finish on the CRM's side

        written = ours(pipe, since, tag)
        published = pipe.results_now(ids)
        recorded = {(r["accounting_id"], r["source"]["lsn"]) for r in published
                    if r["action"] in ("created", "updated")}
        print(f"at the kill: {len(written)} CRM writes, {len(recorded)} results recorded")
        assert len(recorded) < 2 * ROWS, "the kill came after the worker had finished"
        # the moment under test: the CRM has writes the worker never recorded
        assert len(written) > len(recorded), (
            f"the kill did not land between a write and its result: CRM took "
            f"{len(written)} writes, {len(recorded)} results say they wrote"
        )

        start_worker(stack_settings)
        results = pipe.results(ids, 2 * ROWS, timeout_s=300, distinct=True)
    finally:
        if worker_pid(stack_settings) is None:
            start_worker(stack_settings)  # never leave the shared stack without its worker
        pipe.faults(latency_ms=0)
        pipe.close()

    assert not [r for r in results if r["action"] in ("skipped_duplicate_code", "failed")]
    records = pipe.crm_all(tag)
    keys = Counter(match_key(r["code"]) for r in records)
    assert max(keys.values()) == 1, "two CRM records share a code"
    by_ref = {r["external_ref"]: r for r in records}
    for n, row in enumerate(ids):
        record = by_ref[f"default:{row}"]
        assert record["code"] == final[row]
        if n % 2 == 0:
            assert record["name"] == f"Edited {n}"
    assert len(records) == ROWS  # renames moved records; none was created twice
    kinds = Counter(w["kind"] for w in ours(pipe, since, tag))
    print(f"CRM writes for {ROWS} rows: {dict(kinds)}")
    # one create and one update per row: nothing written twice after the restart,
    # and no redelivered insert wrote its older values over the newer ones
    assert (kinds["create"], kinds["update"]) == (ROWS, ROWS), f"CRM writes: {dict(kinds)}"
