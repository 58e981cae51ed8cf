"""Shared fixtures: one real stack for the whole test session, behind one API.

The session gets its own state folder (``<repo>/.acct2crm-test``) and its own
ports (the defaults + 100), set in the environment here, before any Settings
are read, after every other ``ACCT2CRM_*`` variable is cleared: a developer's
own stack, real CRM (URL, token) or Kafka never receives test data. The
reference CRM runs with fault injection on. When a Docker engine answers, the
stack comes from docker-compose.yml through testcontainers; otherwise the
native stack is started (``devstack.lifecycle.up``). Nothing here skips
a test because a service is missing: a stack that cannot start fails loudly.
The stack is brought down at the end unless ``ACCT2CRM_KEEP_STACK=1``, and
always when its setup fails or is interrupted (Ctrl-C). A stack left by an
earlier session in the same state folder is reused (``up`` finds its
processes by pid file or by their working folders). Under Docker the stack is
its own compose project, and its volumes are removed only if this session
created it.

Fixtures for other tests:

- ``stack`` (session) -> ``StackHandle``: ``.settings``, ``.kind``, ``.pids``,
  ``.up()`` (idempotent restart of whatever died), ``.status()`` (status JSON).
- ``stack_settings`` (session) -> ``Settings`` of the running stack.
- ``accounting_db`` -> ``AccountingDb``: ``connect()``, ``execute(sql, params)``,
  ``unique_code(prefix)``, ``insert_customer(**columns)``,
  ``update_customer(id, **columns)``, ``delete_customer(id)``; rows it inserted
  are deleted after the test.
- ``change_reader`` -> ``ChangeTopicReader`` positioned at the end of the change
  topic when the test starts: ``read_until(predicate, timeout_s)`` and
  ``wait_for(predicate, timeout_s)`` over ``ChangeEvent`` (``op``, ``before``,
  ``after``, ``source``, ``key``, ``offset``). ``change_reader_factory(from_beginning)``
  makes more.
- ``crm_http`` (session) -> ``httpx.Client`` with the CRM's base URL and token.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from psycopg.rows import dict_row
from testcontainers.compose import DockerCompose

from acct2crm import status_report as report
from acct2crm.kafka_security import client_config
from acct2crm.settings import Settings, get_settings, reset_settings
from devstack import lifecycle
from tests.support.partitioned_stack import partitioned_stack  # noqa: F401 (a fixture)
from tests.support.sync import Pipeline

REPO = Path(__file__).resolve().parents[1]
# a second test session on the same machine (another checkout) can move both
TEST_HOME = Path(os.environ.get("ACCT2CRM_TEST_HOME", str(REPO / ".acct2crm-test")))
PORT_OFFSET = int(os.environ.get("ACCT2CRM_TEST_PORT_OFFSET", "100"))
_PORT_FIELDS = (
    "pg_port",
    "kafka_port",
    "kafka_controller_port",
    "connect_port",
    "connect_metrics_port",
    "crm_port",
    "worker_port",
)


# the test knobs themselves, and the download cache (jars only, no service, no data)
_KEPT_VARIABLES = ("ACCT2CRM_KEEP_STACK", "ACCT2CRM_CACHE_DIR")


def _isolate_environment() -> None:
    """Point every Settings read in this session at the test stack, and nothing else."""
    for name in list(os.environ):
        if (name.startswith("ACCT2CRM_") and not name.startswith("ACCT2CRM_TEST_")
                and name not in _KEPT_VARIABLES):
            del os.environ[name]
    os.environ["ACCT2CRM_HOME"] = str(TEST_HOME)
    for name in _PORT_FIELDS:
        default = Settings.model_fields[name].default
        os.environ[f"ACCT2CRM_{name.upper()}"] = str(int(default) + PORT_OFFSET)
    # test stacks start and stop their worker often: a lone worker gets its partitions
    # at once instead of after Kafka's 3 s wait for more members
    os.environ["ACCT2CRM_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] = "0"
    # the worker logs every change as JSON: tests/integration/app/test_worker_logs.py reads them
    os.environ["ACCT2CRM_LOG_FORMAT"] = "json"
    os.environ["ACCT2CRM_LOG_LEVEL"] = "debug"
    reset_settings()


_isolate_environment()

RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


# every port a test stack may use: the defaults (55432...59093) plus the offsets of
# the session (+100) and of the tests' own stacks (+200 ... +1900)
TEST_PORT_BAND = "55000-60999"


def _reserve_ports_in_ci() -> None:
    """In CI (a throwaway machine, as root), keep the kernel from lending the test
    stacks' ports to outgoing connections: they lie in Linux's ephemeral range,
    and a port taken that way makes a service's start fail at random."""
    if os.environ.get("CI") != "true" or os.geteuid() != 0 or not RESERVED_PORTS.exists():
        return
    current = RESERVED_PORTS.read_text().strip()
    wanted = f"{current},{TEST_PORT_BAND}" if current else TEST_PORT_BAND
    try:
        RESERVED_PORTS.write_text(wanted)
    except OSError as exc:  # a container without the right: the suite runs as before
        print(f"[stack] could not reserve the test ports: {exc}")


_reserve_ports_in_ci()


# ------------------------------------------------------------------ the stack
@dataclass
class StackHandle:
    """A running stack, whichever way it was started."""

    settings: Settings
    kind: str  # "native" or "docker"
    crm_fault_injection: bool = True
    pids: dict[str, int | None] = field(default_factory=dict)
    created: bool = False  # docker: this session created the compose project
    _compose: Any = None

    def up(self) -> dict[str, int | None]:
        """Start again whatever is not running (idempotent); the pids."""
        if self.kind == "docker":
            self._compose.start()
            _wait_docker_healthy(self.settings)
            return {}
        self.pids = lifecycle.up(
            self.settings, crm_fault_injection=self.crm_fault_injection, echo=_echo
        )
        return self.pids

    def down(self) -> None:
        if self.kind == "docker":
            # volumes go only with a stack this session created, never a user's own
            self._compose.stop(down=self.created)
            return
        lifecycle.down(self.settings, echo=_echo)

    def status(self) -> dict[str, Any]:
        return report.collect(self.settings)


def _echo(line: str) -> None:
    print(f"[stack] {line}")


def _docker_answers() -> bool:
    try:
        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def _wait_docker_healthy(settings: Settings, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    wanted = ("postgres", "kafka", "connect", "crm")
    while True:
        states = report.service_states(settings)
        if all(states[name]["state"] == "running" for name in wanted):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"docker-compose stack not healthy: {states}")
        time.sleep(2)


COMPOSE_PROJECT = "acct2crm-test-" + hashlib.sha256(str(TEST_HOME).encode()).hexdigest()[:8]


def _start_docker(settings: Settings) -> StackHandle:
    # the tests drive CRM outages through /admin/faults; the compose file's own
    # `connectors` service applies the connector from inside the Docker network
    # (applied from here it would point Debezium at this host's loopback)
    os.environ["ACCT2CRM_REFCRM_FAULT_INJECTION"] = "true"
    # compose has no default secrets; the test stack uses the settings' local ones
    for name in ("pg_password", "pg_replication_password", "crm_token"):
        secret = getattr(settings, name).get_secret_value()
        os.environ.setdefault(f"ACCT2CRM_{name.upper()}", secret)
    # a project of the tests' own: never the user's `acct2crm` compose stack
    os.environ["COMPOSE_PROJECT_NAME"] = COMPOSE_PROJECT
    existing = docker.from_env(timeout=10).containers.list(
        all=True, filters={"label": f"com.docker.compose.project={COMPOSE_PROJECT}"}
    )
    compose = DockerCompose(str(REPO), compose_file_name="docker-compose.yml", wait=False)
    handle = StackHandle(settings=settings, kind="docker", created=not existing,
                         _compose=compose)
    try:
        compose.start()
        _wait_docker_healthy(settings)
        _wait_connector_running(settings)
    except BaseException:
        handle.down()
        raise
    return handle


def _wait_connector_running(settings: Settings, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while report.connector_state(settings).get("state") != "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"connector not RUNNING: {report.connector_state(settings)}")
        time.sleep(2)


def _start_native(settings: Settings) -> StackHandle:
    handle = StackHandle(settings=settings, kind="native")
    try:
        handle.up()
    except BaseException:
        # `up` already stopped what it started; this also stops what an earlier,
        # interrupted session left in this state folder (failed setup or Ctrl-C)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C waits
        try:
            handle.down()
        finally:
            signal.signal(signal.SIGINT, previous)
        raise
    return handle


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    settings = get_settings()
    if _docker_answers() and (REPO / "docker-compose.yml").exists():
        handle = _start_docker(settings)
    else:
        handle = _start_native(settings)
    try:
        yield handle
    finally:
        if os.environ.get("ACCT2CRM_KEEP_STACK") != "1":
            handle.down()


@pytest.fixture(scope="session")
def stack_settings(stack: StackHandle) -> Settings:
    return stack.settings


# ------------------------------------------------------- the accounting table
class AccountingDb:
    """SQL against the accounting database as the application role."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.inserted: list[int] = []

    def connect(self) -> psycopg.Connection[dict[str, Any]]:
        """A new autocommit connection (rows as dicts); close it yourself."""
        return psycopg.connect(
            self.settings.postgres_conninfo(), autocommit=True, row_factory=dict_row
        )

    def execute(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Run one statement in its own transaction; the rows it returned, if any."""
        with self.connect() as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    @staticmethod
    def unique_code(prefix: str = "T") -> str:
        return f"{prefix}{uuid.uuid4().hex[:10].upper()}"

    def insert_customer(self, **columns: Any) -> dict[str, Any]:
        """Insert a row (a unique code and a name unless given); the row as stored."""
        columns.setdefault("code", self.unique_code())
        columns.setdefault("name", f"Customer {columns['code']}")
        names = ", ".join(columns)
        marks = ", ".join(["%s"] * len(columns))
        row = self.execute(
            f"INSERT INTO accounting.customer ({names}) VALUES ({marks}) RETURNING *",
            list(columns.values()),
        )[0]
        self.inserted.append(int(row["id"]))
        return row

    def update_customer(self, row_id: int, **columns: Any) -> dict[str, Any]:
        assignments = ", ".join(f"{name} = %s" for name in columns)
        return self.execute(
            f"UPDATE accounting.customer SET {assignments} WHERE id = %s RETURNING *",
            [*columns.values(), row_id],
        )[0]

    def delete_customer(self, row_id: int) -> None:
        self.execute("DELETE FROM accounting.customer WHERE id = %s", [row_id])

    def cleanup(self) -> None:
        if self.inserted:
            self.execute("DELETE FROM accounting.customer WHERE id = ANY(%s)", [self.inserted])
            self.inserted.clear()


@pytest.fixture
def accounting_db(stack_settings: Settings) -> Iterator[AccountingDb]:
    db = AccountingDb(stack_settings)
    yield db
    db.cleanup()


# ------------------------------------------------------------ the change topic
@dataclass(frozen=True)
class ChangeEvent:
    """One Debezium message of the change topic (JSON, no schemas)."""

    key: dict[str, Any] | None
    value: dict[str, Any] | None
    partition: int
    offset: int

    @property
    def op(self) -> str | None:
        return None if self.value is None else self.value.get("op")

    @property
    def before(self) -> dict[str, Any] | None:
        return None if self.value is None else self.value.get("before")

    @property
    def after(self) -> dict[str, Any] | None:
        return None if self.value is None else self.value.get("after")

    @property
    def source(self) -> dict[str, Any]:
        return {} if self.value is None else dict(self.value.get("source") or {})

    @property
    def row(self) -> dict[str, Any]:
        """``after``, or ``before`` for a delete."""
        return self.after or self.before or {}


class ChangeTopicReader:
    """A consumer of the change topic with a fresh group that never commits."""

    def __init__(self, settings: Settings, from_beginning: bool = False) -> None:
        self.settings = settings
        self.topic = settings.change_topic
        self.consumer = Consumer(
            client_config(settings) | {
                "group.id": f"acct2crm-test-{secrets.token_hex(4)}",
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )
        metadata = self.consumer.list_topics(self.topic, timeout=30)
        partitions = sorted(metadata.topics[self.topic].partitions)
        assignment = []
        for partition in partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=30
            )
            start = low if from_beginning else high
            assignment.append(TopicPartition(self.topic, partition, start))
        # explicit offsets: nothing written after this point can be missed
        self.consumer.assign(assignment)

    def read_until(
        self, predicate: Callable[[ChangeEvent], bool], timeout_s: float = 60.0
    ) -> list[ChangeEvent]:
        """Every event read, up to and including the first one ``predicate`` accepts."""
        seen: list[ChangeEvent] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self.consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise RuntimeError(f"change topic read failed: {message.error()}")
            raw_key, raw_value = message.key(), message.value()
            event = ChangeEvent(
                key=json.loads(raw_key) if raw_key else None,
                value=json.loads(raw_value) if raw_value else None,
                partition=message.partition() or 0,
                offset=message.offset() or 0,
            )
            seen.append(event)
            if predicate(event):
                return seen
        ops = [(e.op, e.row.get("code")) for e in seen[-10:]]
        raise AssertionError(
            f"no matching event on {self.topic} within {timeout_s:.0f}s; "
            f"{len(seen)} read, last: {ops}"
        )

    def wait_for(
        self, predicate: Callable[[ChangeEvent], bool], timeout_s: float = 60.0
    ) -> ChangeEvent:
        return self.read_until(predicate, timeout_s)[-1]

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def change_reader_factory(
    stack_settings: Settings,
) -> Iterator[Callable[..., ChangeTopicReader]]:
    readers: list[ChangeTopicReader] = []

    def make(from_beginning: bool = False) -> ChangeTopicReader:
        reader = ChangeTopicReader(stack_settings, from_beginning=from_beginning)
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


@pytest.fixture
def change_reader(change_reader_factory: Callable[..., ChangeTopicReader]) -> ChangeTopicReader:
    return change_reader_factory()


# ------------------------------------------------------------------- the CRM
@pytest.fixture(scope="session")
def crm_http(stack_settings: Settings) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {stack_settings.crm_token.get_secret_value()}"}
    with httpx.Client(base_url=stack_settings.crm_url, headers=headers, timeout=10.0) as client:
        health = client.get("/healthz")
        assert health.status_code == 200, f"reference CRM not healthy: {health.status_code}"
        yield client


# ------------------------------------------------------------ the pipeline
@pytest.fixture
def pipe(stack_settings: Settings) -> Iterator[Pipeline]:
    """The running sync seen from one test: writes in, results and CRM state out."""
    p = Pipeline.start(stack_settings)
    yield p
    p.close()
