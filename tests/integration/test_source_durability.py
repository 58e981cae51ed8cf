"""What keeps changes from being lost at the source end: topic retention, the
replication slot's WAL cap and heartbeat, and source resets. Real stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from acct2crm import source_watch
from acct2crm.connect.client import ConnectClient
from acct2crm.connect.config import load
from acct2crm.kafka_io import admin_client, flush, producer
from acct2crm.local_stack import find_local_stack
from acct2crm.progress import oldest_unapplied_ms, retention_warning
from acct2crm.records.avro import avro_type
from acct2crm.replay import POSITIONS_CHANGELOG
from acct2crm.rules.resets import RESET_REASON
from acct2crm.settings import Settings
from acct2crm.tenants import default_tenant
from acct2crm.topics import ensure_retention, project_topics, retention_of
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )


def pg_one(settings: Settings, sql: str, params: Any = None) -> Any:
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


# ------------------------------------------------------------------ retention


def test_project_topics_keep_changes_as_long_as_configured(stack_settings: Settings) -> None:
    found = retention_of(stack_settings)
    assert set(found) == set(project_topics(stack_settings))
    for topic, retention_ms in found.items():
        assert retention_ms == stack_settings.topic_retention_ms == -1, topic


def test_a_topic_with_a_shorter_retention_is_corrected(stack_settings: Settings) -> None:
    topic = stack_settings.dlq_topic
    week = ConfigEntry("retention.ms", str(7 * 86_400_000),
                       incremental_operation=AlterConfigOpType.SET)
    admin = admin_client(stack_settings)
    [future] = admin.incremental_alter_configs(
        [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[week])]).values()
    future.result(timeout=15)
    assert retention_of(stack_settings)[topic] == 7 * 86_400_000
    done = cli("connectors", "apply")
    assert done.returncode == 0, done.stderr
    assert f"{topic} retention.ms 604800000 -> -1" in done.stdout
    assert retention_of(stack_settings)[topic] == -1
    assert ensure_retention(stack_settings) == []  # nothing left to correct


def test_debezium_creates_its_own_topics_with_the_configured_retention(
    stack_settings: Settings,
) -> None:
    # the default tenant's (a stack with tenants has one connector per tenant)
    [definition] = load(stack_settings, tenants=[default_tenant(stack_settings)])
    config = definition.config
    # the change topic, should Debezium ever create it, keeps what the CRM has not seen
    assert config["topic.creation.default.retention.ms"] == "-1"
    # heartbeats carry nothing the sync reads: a day is plenty
    assert config["topic.creation.groups"] == "heartbeat"
    assert re.fullmatch(config["topic.creation.heartbeat.include"],
                        f"__debezium-heartbeat.{stack_settings.topic_prefix}")
    assert not re.fullmatch(config["topic.creation.heartbeat.include"],
                            stack_settings.change_topic)
    assert config["topic.creation.heartbeat.retention.ms"] == "86400000"
    with ConnectClient(stack_settings.connect_url) as client:
        assert client.get_config(definition.name) == {**config, "name": definition.name}


# ------------------------------------------------------------------ slot and heartbeat


def test_the_slot_may_hold_only_the_configured_wal(stack_settings: Settings) -> None:
    assert pg_one(stack_settings, "SHOW max_slot_wal_keep_size") == (
        stack_settings.pg_max_slot_wal_keep_size)
    safe = pg_one(stack_settings, "SELECT safe_wal_size FROM pg_replication_slots "
                  "WHERE slot_name = %s", [stack_settings.pg_slot])
    assert safe is not None and safe > 0  # a capped slot reports how much WAL is left


def test_the_heartbeat_writes_the_database_and_the_slot_advances_while_idle(
    stack_settings: Settings,
) -> None:
    query = "SELECT beat_at FROM acct2crm.heartbeat WHERE id = 1"
    flushed = ("SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots "
               "WHERE slot_name = %s")
    first_beat = pg_one(stack_settings, query)
    first_flush = pg_one(stack_settings, flushed, [stack_settings.pg_slot])
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        time.sleep(2)
        beat = pg_one(stack_settings, query)
        flush_lsn = pg_one(stack_settings, flushed, [stack_settings.pg_slot])
        if beat > first_beat and flush_lsn > first_flush:
            break
    assert beat > first_beat, "Debezium's heartbeat.action.query did not run"
    assert flush_lsn > first_flush, "the slot did not advance with no customer change"
    status = json.loads(cli("status", "--json").stdout)
    assert status["source"]["heartbeat_at"] is not None
    assert status["source"]["slot"]["exists"] is True
    assert status["source"]["recorded_system_identifier"] == (
        status["source"]["system_identifier"])
    assert status["warnings"] == []


# ------------------------------------------------------------------ source reset


def test_a_change_after_a_source_reset_is_held_back_then_applied_after_rebase(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    stack = find_local_stack()
    assert stack is not None
    code = unique_tag()
    row = pipe.insert(code, name="Before the reset")
    assert [r["action"] for r in pipe.results([row], 1)] == ["created"]
    # what a restored backup leaves behind: this row's position is from a history
    # whose LSNs are far above the database's now, taken long ago
    assert stack.stop_worker(stack_settings)
    p = producer(stack_settings)
    p.produce(
        POSITIONS_CHANGELOG,
        key=json.dumps(f"{stack_settings.tenant}\x1f{row}").encode(),
        value=avro_type("position").encode({"lsn": 1 << 40, "tx_id": 1, "ts_ms": 1}),
    )
    flush(p)
    stack.start_worker(stack_settings)
    pipe.update(row, name="After the reset")
    [held] = [r for r in pipe.results([row], 2) if r["op"] == "u"]
    assert held["action"] == "failed"
    assert held["reason"].startswith(RESET_REASON), held["reason"]
    assert pipe.crm_by_code(code)[0]["name"] == "Before the reset"  # nothing written...
    assert any(
        d["reason"].startswith(RESET_REASON) for d in pipe.dead_letters(1)
    )  # ...and nothing dropped: the change is kept
    # --before: forget only this row's planted position (taken at 1 ms), not the
    # positions of every other test's rows, which the default cutoff would take
    preview = cli("positions", "rebase", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "re-read from offset" in preview.stdout
    assert pipe.crm_by_code(code)[0]["name"] == "Before the reset"  # a dry run moves nothing
    done = cli("positions", "rebase", "--before", "2")
    assert done.returncode == 0, done.stderr
    assert "re-read from offset" in done.stdout
    deadline = time.monotonic() + 90
    while pipe.crm_by_code(code)[0]["name"] != "After the reset":
        assert time.monotonic() < deadline, "the held-back change was not applied after rebase"
        time.sleep(1)


def test_another_cluster_is_reported_on_status_and_by_connectors_apply(
    stack_settings: Settings,
) -> None:
    current = source_watch.current_system_identifier(stack_settings)
    assert source_watch.recorded_identity(stack_settings) == current
    # as if the positions had been taken on another cluster
    source_watch.record_identity(stack_settings, "6999999999999999999")
    try:
        status = json.loads(cli("status", "--json").stdout)
        [warning] = [w for w in status["warnings"] if w.startswith("source reset")]
        assert "6999999999999999999" in warning and current in warning
        assert "acct2crm positions rebase" in warning
        assert "WARNING source reset" in cli("status").stdout
        applied = cli("connectors", "apply")
        assert applied.returncode == 0, applied.stderr
        assert "source reset" in applied.stderr  # said, and the old baseline is kept
        assert source_watch.recorded_identity(stack_settings) == "6999999999999999999"
    finally:
        source_watch.record_identity(stack_settings, current)
    assert json.loads(cli("status", "--json").stdout)["warnings"] == []


def test_the_oldest_unapplied_change_is_dated_for_the_retention_warning(
    pipe: Pipeline, stack_settings: Settings
) -> None:
    stack = find_local_stack()
    assert stack is not None
    assert stack.stop_worker(stack_settings)
    try:
        before_ms = int(time.time() * 1000)
        row = pipe.insert(unique_tag())
        deadline = time.monotonic() + 60
        while stack_settings.change_topic not in oldest_unapplied_ms(stack_settings):
            assert time.monotonic() < deadline, "the change never showed as unapplied"
            time.sleep(0.5)
        written = oldest_unapplied_ms(stack_settings)[stack_settings.change_topic]
        assert before_ms - 60_000 <= written <= int(time.time() * 1000)
        age = int(time.time() * 1000) - written
        assert retention_warning(stack_settings.change_topic, age, -1, 0.8) is None
        # with a retention barely longer than the backlog's age, status would warn
        assert retention_warning(stack_settings.change_topic, age, age + 1, 0.8) is not None
    finally:
        stack.start_worker(stack_settings)
    pipe.results([row], 1)
