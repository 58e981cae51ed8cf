"""The cases under the rules table (docs/rules.md) that need more than one rule row:
snapshot rows, replays, backfill, bad input. Real stack throughout."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import httpx
import psycopg
import pytest
from confluent_kafka import Producer

from acct2crm.connect.config import load
from acct2crm.kafka_security import client_config
from acct2crm.progress import lag
from acct2crm.settings import Settings
from acct2crm.tenants import default_tenant
from tests.support.sync import Pipeline, unique_tag, wait_commit_at_end

pytestmark = pytest.mark.integration


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real command line, with the test stack's settings (inherited environment)."""
    return subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )


def wait_caught_up(settings: Settings, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while lag(settings) != 0:
        assert time.monotonic() < deadline, "the worker did not catch up"
        time.sleep(0.5)


def test_rows_present_before_a_connector_started_do_not_touch_the_crm(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    code = unique_tag()
    row = pipe.insert(code)
    pipe.results([row], 1)
    writes = pipe.crm_writes()
    [definition] = load(stack_settings, tenants=[default_tenant(stack_settings)])
    # a new name each run: Connect remembers a connector's offsets by name, and a
    # probe that already snapshotted once would not snapshot again
    suffix = code.lower()
    probe, slot = f"acct2crm-snapshot-probe-{suffix}", f"acct2crm_probe_{suffix}"
    config = {
        **definition.config,
        "snapshot.mode": "initial_only",
        "slot.name": slot,
        # its own JMX name, or Debezium waits a minute for the main connector's to free up
        "custom.metric.tags": "probe=snapshot",
    }
    connect = httpx.Client(base_url=stack_settings.connect_url, timeout=15)
    try:
        assert connect.put(f"/connectors/{probe}/config", json=config).status_code in (200, 201)
        results = pipe.results([row], 2, timeout_s=120)
    finally:
        connect.delete(f"/connectors/{probe}")
        connect.close()
        _drop_slot(stack_settings, slot)
    snapshot = [r for r in results if r["op"] == "r"]
    assert snapshot and snapshot[0]["action"] == "ignored_snapshot"
    assert pipe.crm_writes() == writes


def _drop_slot(settings: Settings, slot: str) -> None:
    conninfo = (
        f"host={settings.pg_host} port={settings.pg_port} dbname={settings.pg_database} "
        f"user={settings.pg_replication_user} "
        f"password={settings.pg_replication_password.get_secret_value()}"
    )
    deadline = time.monotonic() + 30
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone()
            if row is None:
                return
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
                return
            time.sleep(0.5)


def test_bad_rows_fail_with_a_reason_and_the_line_goes_on(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    tag = unique_tag()
    rejected = pipe.insert(f"{tag}-X", tax_code="12345")  # the CRM answers 422
    blank = pipe.insert("".join(random.choice(" \t") for _ in range(12)))
    fine = pipe.insert(f"{tag}-OK")
    results = {r["accounting_id"]: r for r in pipe.results([rejected, blank, fine], 3)}
    assert results[rejected]["action"] == "failed"
    assert "tax_code" in results[rejected]["reason"]
    assert results[blank]["action"] == "failed"
    assert "code is empty" in results[blank]["reason"]
    assert results[fine]["action"] == "created"
    dead = pipe.dead_letters(2)
    reasons = " | ".join(d["reason"] for d in dead)
    assert "tax_code" in reasons and "code is empty" in reasons
    assert all(d["change_offset"] is not None for d in dead)
    assert pipe.crm_by_code(f"{tag}-X") == []


def test_undecodable_message_is_a_dead_letter_and_the_line_goes_on(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    producer = Producer(client_config(stack_settings))
    producer.produce(stack_settings.change_topic, key=b'{"id": -1}', value=b"\x00not json")
    assert producer.flush(10) == 0
    code = unique_tag()
    row = pipe.insert(code)
    assert pipe.results([row], 1)[0]["action"] == "created"
    [dead] = [d for d in pipe.dead_letters(1) if d["value"] == b"\x00not json"]
    assert dead["topic"] == stack_settings.change_topic
    assert dead["key"] == b'{"id": -1}'
    assert "not JSON" in dead["reason"]


def test_replaying_the_whole_topic_writes_nothing(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    tag = unique_tag()
    row = pipe.insert(f"{tag}-A")
    pipe.update(row, code=f"{tag}-B", phone="0900000000")
    pipe.results([row], 2)
    wait_caught_up(stack_settings)
    writes, journal = pipe.crm_writes(), pipe.crm_write_seq()

    preview = cli("replay", "--from-offset", "0", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "already synced" in preview.stdout  # applied changes are recognised

    done = cli("replay", "--from-offset", "0")
    assert done.returncode == 0, done.stderr
    assert "rewound to offset 0" in done.stdout
    replayed = pipe.results([row], 4, timeout_s=180)
    again = [r for r in replayed if "replay" in r["reason"]]
    assert [r["action"] for r in again] == ["unchanged", "unchanged"]
    wait_caught_up(stack_settings)
    # Faust's own commit follows the ledger past the replayed range, while the worker
    # runs: Kafka's view of the group's lag is true, a restart re-reads nothing
    wait_commit_at_end(stack_settings)
    assert pipe.crm_writes_since(journal) == [], _replay_writes(pipe, journal, preview.stdout)
    assert pipe.crm_writes() == writes
    assert len(pipe.crm_all(tag)) == 1


def _replay_writes(pipe: Pipeline, journal: int, preview: str) -> str:
    """What a replay wrote, and why: the results that say which rule decided each
    write, and how many changes the dry run (which reads the positions' changelog)
    already expected to send. Few there but many writes means the worker restored
    other positions than its changelog holds; many there, that the changelog
    lacks positions the worker had applied."""
    written = pipe.crm_writes_since(journal)
    to_sink = [line for line in preview.splitlines() if "sent to the CRM sink" in line]
    ids = {w["id"] for w in written}
    results = pipe.results_where(lambda r: r.get("crm_id") in ids, 10**9, timeout_s=3)
    lines = [f"the dry run expected {len(to_sink)} changes to reach the sink:"]
    lines += to_sink[:10]
    lines.append(f"{len(written)} CRM writes during the replay; the first 20:")
    lines += [f"  {w}" for w in written[:20]]
    lines.append("results naming those CRM customers (published after the pipe started):")
    lines += [
        f"  row {r['accounting_id']} {r['op']} lsn {(r.get('source') or {}).get('lsn')} "
        f"{r['action']}: {r['reason']}"
        for r in results[-40:]
    ]
    return "\n".join(lines)


def test_backfill_creates_in_scope_rows_and_is_idempotent(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    tag = unique_tag()
    sales = pipe.crm_create(f"{tag}-S")
    # rows the sync never created: out of scope when inserted, then scope widened
    pipe.sql(
        "INSERT INTO accounting.customer (code, name, is_customer, is_vendor) VALUES "
        "(%s, 'Vendor turned customer', false, true), (%s, 'Dup of sales', false, true)",
        [f"{tag}-V", f"{tag}-s"],
    )
    ids = [r[0] for r in pipe.sql(
        "SELECT id FROM accounting.customer WHERE code IN (%s, %s) ORDER BY id",
        [f"{tag}-V", f"{tag}-s"])]
    pipe.results(ids, 2)
    # widen the scope to vendors: the rows are now in scope but were never synced
    scope = stack_settings.effective_scope_file
    scope.write_text("customers_only = false\n", encoding="utf-8")
    try:
        # a dry run writes nothing: the CRM's counters, its write journal and the
        # sales record's updated_at are read BEFORE it, then again once the
        # worker has handled everything (a dry run that sent work would show)
        wait_caught_up(stack_settings)
        before = pipe.crm_stats()
        journal = pipe.crm_write_seq()
        [sales_before] = pipe.crm_by_code(f"{tag}-S")
        dry = cli("backfill", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "created" in dry.stdout and "skipped_duplicate_code" in dry.stdout
        time.sleep(2)  # give a wrongly sent command time to reach the worker
        wait_caught_up(stack_settings)
        after = pipe.crm_stats()
        assert pipe.crm_writes_since(journal) == []
        assert (after["writes"], after["creates"], after["updates"]) == (
            before["writes"], before["creates"], before["updates"])
        assert pipe.crm_by_code(f"{tag}-S") == [sales_before]  # updated_at included
        assert pipe.crm_by_code(f"{tag}-V") == []
        run = cli("backfill")
        assert run.returncode == 0, run.stderr
        backfilled = [r for r in pipe.results(ids, 4) if r["op"] == "b"]
        results = {r["accounting_id"]: r for r in backfilled}
        assert results[ids[0]]["action"] == "created"
        assert results[ids[1]]["action"] == "skipped_duplicate_code"
        assert results[ids[1]]["crm_id"] == sales["id"]
        wait_caught_up(stack_settings)
        writes = pipe.crm_writes()
        again = cli("backfill")
        assert again.returncode == 0, again.stderr
        pipe.results(ids, 6)
        assert pipe.crm_writes() == writes
    finally:
        scope.unlink()
    assert json.loads(json.dumps(pipe.crm_by_code(f"{tag}-V")))[0]["external_ref"] == (
        f"default:{ids[0]}")


def test_an_edit_open_during_backfill_and_committed_after_it_reaches_the_crm(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    tag = unique_tag()
    # a row the sync never wrote (out of scope when inserted), and a bystander
    [(row_id,)] = pipe.sql(
        "INSERT INTO accounting.customer (code, name, is_customer, is_vendor) "
        "VALUES (%s, 'Before the edit', false, true) RETURNING id", [f"{tag}-R"])
    [(other_id,)] = pipe.sql(
        "INSERT INTO accounting.customer (code, name, is_customer, is_vendor) "
        "VALUES (%s, 'Bystander', false, false) RETURNING id", [f"{tag}-O"])
    pipe.results([row_id, other_id], 2)
    scope = stack_settings.effective_scope_file
    scope.write_text("customers_only = false\n", encoding="utf-8")
    try:
        with psycopg.connect(stack_settings.postgres_conninfo()) as open_tx:
            # the edit's WAL record is written now; its commit comes after the backfill
            open_tx.execute(
                "UPDATE accounting.customer SET name = 'Committed after the backfill' "
                "WHERE id = %s", [row_id])
            # another commit flushes WAL past the open edit's record, as any busy
            # database does, so the backfill's snapshot sees a WAL position above it
            pipe.sql("UPDATE accounting.customer SET name = 'Bystander 2' WHERE id = %s",
                     [other_id])
            run = cli("backfill")
            assert run.returncode == 0, run.stderr
            backfilled = [r for r in pipe.results([row_id], 2) if r["op"] == "b"]
            assert [r["action"] for r in backfilled] == ["created"]
            assert pipe.crm_by_code(f"{tag}-R")[0]["name"] == "Before the edit"
            open_tx.commit()
        live = [r for r in pipe.results([row_id], 3) if r["op"] == "u"]
        assert [r["action"] for r in live] == ["updated"], live
        wait_caught_up(stack_settings)
        [record] = pipe.crm_by_code(f"{tag}-R")
        assert record["name"] == "Committed after the backfill"
        # a second backfill is a replay of the first: nothing written
        writes = pipe.crm_writes()
        again = cli("backfill")
        assert again.returncode == 0, again.stderr
        pipe.results([row_id], 4)
        wait_caught_up(stack_settings)
        assert pipe.crm_writes() == writes
        assert pipe.crm_by_code(f"{tag}-R")[0]["name"] == "Committed after the backfill"
    finally:
        scope.unlink()
