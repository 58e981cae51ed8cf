"""The local stack as an operator uses it: up, status, down, connectors, crash recovery.

Tests that stop things either use a stack of their own (own state folder and
ports) or bring the session stack back before they end, so other tests keep
a working stack whatever the order.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from acct2crm.connect.config import load
from acct2crm.settings import Settings
from acct2crm.tenants import default_tenant
from devstack.paths import StackPaths
from devstack.processes import is_alive, port_open, read_pid

if TYPE_CHECKING:
    from tests.conftest import AccountingDb, ChangeEvent, ChangeTopicReader, StackHandle

pytestmark = pytest.mark.integration

SERVICES = ("postgres", "kafka", "connect", "crm", "worker")
STATUS_KEYS = {
    "postgres_dsn", "kafka_bootstrap", "connect_url", "crm_url", "crm_token", "status_url",
    "services", "lag", "counts", "connector", "last_failures", "sync", "source", "warnings",
    "kafka_error", "workers", "tenants", "connectors", "problems",
}


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run ``acct2crm ARGS`` as an operator would; its output (fails on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )
    assert done.returncode == 0, f"acct2crm {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_up_twice_changes_nothing(stack: StackHandle) -> None:
    if stack.kind != "native":
        pytest.skip("pids exist only for the native stack")  # docker path: compose owns them
    before = stack.up()
    after = stack.up()
    assert after == before
    for name in ("postgres", "kafka", "connect"):
        pid = before[name]
        assert pid is not None and is_alive(pid)


def test_status_json_has_the_contract_keys(stack: StackHandle) -> None:
    report = json.loads(cli("status", "--json"))

    assert set(report) == STATUS_KEYS
    assert set(report["services"]) == set(SERVICES)
    for item in report["services"].values():
        assert set(item) == {"state", "pid"}
    for name in ("postgres", "kafka", "connect"):
        assert report["services"][name]["state"] == "running"
    assert isinstance(report["lag"], int)
    assert isinstance(report["counts"], dict)
    assert report["connector"]["state"] == "RUNNING"
    # every tenant's connector, the default tenant's (`connector`) first
    assert report["connectors"][0] == {"tenant": "default", **report["connector"]}
    assert report["sync"]["state"] == "running"
    assert report["problems"] == []
    cli("status", "--check")  # exits 0: nothing needs the operator
    # the slot's reader (Connect's walsender, another role's session) is visible with
    # its start, so a heartbeat older than the reader is not taken for silence
    slot, deadline = report["source"]["slot"], time.monotonic() + 60
    while not slot["active"] and time.monotonic() < deadline:  # Connect restarted by a test
        time.sleep(1)
        slot = json.loads(cli("status", "--json"))["source"]["slot"]
    assert slot["active"] and slot["reading_since"] is not None, slot
    assert datetime.fromisoformat(slot["reading_since"]) <= datetime.now(UTC)
    assert report["kafka_bootstrap"] == stack.settings.kafka_bootstrap
    assert report["postgres_dsn"] == stack.settings.postgres_dsn
    # docs/contract.md: the local stack's DSN connects as printed (its password included)
    with psycopg.connect(report["postgres_dsn"]) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == (stack.settings.pg_user, stack.settings.pg_database)
    assert stack.settings.pg_replication_password.get_secret_value() not in json.dumps(report)


def test_status_text_masks_the_crm_token_and_prints_a_dsn_that_connects(
    stack: StackHandle,
) -> None:
    text = cli("status")
    assert stack.settings.crm_token.get_secret_value() not in text
    [dsn] = [line.split()[1] for line in text.splitlines() if line.startswith("postgres ")]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_connectors_apply_twice_is_idempotent(stack: StackHandle) -> None:
    first = cli("connectors", "apply")
    second = cli("connectors", "apply")

    assert "RUNNING" in first
    assert "unchanged, RUNNING" in second
    assert "RUNNING" in cli("connectors", "status")


def test_connector_config_holds_no_plain_password(stack_settings: Settings) -> None:
    name = load(stack_settings)[0].name
    config = httpx.get(f"{stack_settings.connect_url}/connectors/{name}/config").json()
    assert config["database.password"].startswith("${file:")
    secrets_file = StackPaths.of(stack_settings).connect_secrets
    assert secrets_file.stat().st_mode & 0o777 == 0o600


def test_capture_resumes_after_connect_is_killed(
    stack: StackHandle, accounting_db: AccountingDb, change_reader: ChangeTopicReader
) -> None:
    if stack.kind != "native":
        pytest.skip("kills a process of the native stack")
    paths = StackPaths.of(stack.settings)
    connect_pid = read_pid(paths.pid_file("connect"))
    assert connect_pid is not None

    os.kill(connect_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(connect_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_alive(connect_pid)
    while_down = [accounting_db.insert_customer() for _ in range(3)]

    pids = stack.up()

    assert pids["connect"] not in (None, connect_pid)
    codes = {row["code"] for row in while_down}
    seen: set[str] = set()

    def all_arrived(event: ChangeEvent) -> bool:
        if event.op == "c" and event.row.get("code") in codes:
            seen.add(event.row["code"])
        return seen == codes

    change_reader.read_until(all_arrived, timeout_s=120)


PORT_FIELDS = (
    "pg_port", "kafka_port", "kafka_controller_port", "connect_port", "crm_port", "worker_port",
    "connect_metrics_port",
)


def _own_stack_env(home: Path) -> dict[str, str]:
    """Environment of a second stack: its own state folder, and ports that are free now
    (defaults + 700, + 800, ...: the session uses + 100, developers pick small offsets)."""
    defaults = [int(Settings.model_fields[name].default) for name in PORT_FIELDS]
    offset = next(
        offset for offset in range(700, 5000, 100)
        if not any(port_open(port + offset) for port in defaults)
    )
    env = dict(os.environ)
    env["ACCT2CRM_HOME"] = str(home)
    for name, port in zip(PORT_FIELDS, defaults, strict=True):
        env[f"ACCT2CRM_{name.upper()}"] = str(port + offset)
    return env


@pytest.fixture
def second_stack(stack_settings: Settings) -> Iterator[tuple[Path, dict[str, str]]]:
    """A stack of its own beside the session's (reachable by the postgres user); always
    brought down and removed afterwards, even when the test fails half-way."""
    home = stack_settings.home / "second-stack"
    shutil.rmtree(home, ignore_errors=True)
    env = _own_stack_env(home)
    yield home, env
    subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", "down"], env=env, capture_output=True,
        timeout=300, check=False,
    )
    shutil.rmtree(home, ignore_errors=True)


def test_down_leaves_no_process_of_the_stack(second_stack: tuple[Path, dict[str, str]]) -> None:
    home, env = second_stack
    cli("up", env=env)
    run_dir = home / "run"
    pids = {path.stem: read_pid(path) for path in run_dir.glob("*.pid")}
    assert {"postgres", "kafka", "connect"} <= set(pids)
    assert all(pid is not None and is_alive(pid) for pid in pids.values()), pids

    cli("down", env=env)

    assert [name for name, pid in pids.items() if pid and is_alive(pid)] == []
    assert list(run_dir.glob("*.pid")) == []
    ports = [int(env[f"ACCT2CRM_{n}"]) for n in ("PG_PORT", "KAFKA_PORT", "CONNECT_PORT")]
    assert [port for port in ports if port_open(port)] == []
    assert "nothing was running" in cli("down", env=env)



def test_connector_definition_renders_every_placeholder_and_no_secret() -> None:
    settings = Settings(pg_replication_password=SecretStr("s3cret-value"))

    (definition,) = load(settings, tenants=[default_tenant(settings)])

    rendered = json.dumps(definition.config)
    assert "${acct2crm:" not in rendered
    assert "s3cret-value" not in rendered
    assert definition.config["topic.prefix"] == settings.topic_prefix
    assert definition.config["slot.name"] == settings.pg_slot
    assert definition.config["publication.name"] == settings.pg_publication
    assert definition.config["tombstones.on.delete"] == "false"
    secrets_file = str(StackPaths.of(settings).connect_secrets)
    assert definition.config["database.password"] == (
        f"${{file:{secrets_file}:pg_replication_password}}"
    )
