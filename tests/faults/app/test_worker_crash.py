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
# kill once many inserts and second changes reached the CRM: a redelivered insert
# may then meet a record already renamed or edited after it
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
        # each row's second change follows its insert at once: both commands of
        # a row meet in one batch of the worker, one lane, so its first write is
        # on the CRM while its second is under way, with batch calls as with
        # single calls (the moment the kill must find)
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for n in range(ROWS):  # second change per row: rename half, edit the rest
            first = f"{tag}-{n:03}"
            statements.append(
                ("INSERT INTO accounting.customer (code, name, phone) VALUES (%s, %s, %s) "
                 "RETURNING id", (first, f"Customer {n}", f"0{n:09}"))
            )
            if n % 2:
                statements.append(("UPDATE accounting.customer SET code = %s WHERE code = %s",
                                   (f"{tag}-R{n:03}", first)))
            else:
                statements.append(("UPDATE accounting.customer SET name = %s WHERE code = %s",
                                   (f"Edited {n}", first)))
        ids = [int(row) for row in pipe.many(statements)[0::2]]
        final = {
            row: f"{tag}-R{n:03}" if n % 2 else f"{tag}-{n:03}" for n, row in enumerate(ids)
        }

        deadline = time.monotonic() + 120
        while True:
            so_far = ours(pipe, since, tag)
            # the last write a create: its lane's second write is under way, so its
            # result is not out yet (the CRM takes LATENCY_MS for each call)
            if len(so_far) >= WRITES_BEFORE_KILL and so_far[-1]["kind"] == "create":
                break
            assert time.monotonic() < deadline, "the worker never started writing"
            time.sleep(0.02)
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
