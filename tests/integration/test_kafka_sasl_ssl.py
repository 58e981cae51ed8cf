"""The sync through a Kafka that asks for TLS and SCRAM, as a managed Kafka does.

A stack of the test's own (never the session's) whose broker also listens with
SASL_SSL + SCRAM-SHA-512, a CA and broker certificate made by this very test
run, and the clients' SCRAM user added when its storage is formatted. Every
client of the project (the worker through Faust and aiokafka, topic creation,
Connect and Debezium, `status`, `connectors apply`) is configured for SASL_SSL
and pointed at that listener; a SASL_SSL client cannot speak to the PLAINTEXT
port, so a change reaching the CRM proves every hop went through the secured
one. A wrong password must be said plainly, within seconds, by `status` and
by the worker.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka.admin import ConfigResource, ConfigSource  # type: ignore[attr-defined]

from acct2crm.kafka_check import check_kafka
from acct2crm.kafka_io import admin_client
from acct2crm.progress import code_history
from acct2crm.settings import Settings
from tests.support.own_stack import OwnStack

pytestmark = pytest.mark.integration

USER = "acct2crm-sync"
PASSWORD = "Sc" + secrets.token_hex(12)  # this run's own
WRONG = "not-" + PASSWORD


def _password_file(folder: Path, name: str, password: str) -> Path:
    path = folder / name
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def _security_env(own: OwnStack, password_file: Path) -> dict[str, str]:
    return {
        "ACCT2CRM_KAFKA_SASL_SSL_PORT": str(own.ports["kafka_port"] + 5),
        "ACCT2CRM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ACCT2CRM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ACCT2CRM_KAFKA_SASL_USERNAME": USER,
        "ACCT2CRM_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        # the local broker's CA, made by `up` in this stack's state folder
        "ACCT2CRM_KAFKA_SSL_CA_FILE": str(own.home / "kafka" / "tls" / "ca.pem"),
    }


def _settings(own: OwnStack, password_file: Path) -> Settings:
    env = _security_env(own, password_file)
    return Settings(
        home=own.home, **own.ports,
        kafka_sasl_ssl_port=int(env["ACCT2CRM_KAFKA_SASL_SSL_PORT"]),
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=USER, kafka_sasl_password_file=password_file,
        kafka_ssl_ca_file=Path(env["ACCT2CRM_KAFKA_SSL_CA_FILE"]),
    )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    folder = tmp_path_factory.mktemp("sasl-ssl")
    own = OwnStack(folder / "state")
    own.extra_env.update(_security_env(own, _password_file(folder, "password", PASSWORD)))
    try:
        done = own.cli("up", timeout=600)
        log = own.home / "logs" / "worker.log"
        said = [line for line in log.read_text().splitlines() if "acct2crm:" in line] \
            if log.exists() else []
        assert done.returncode == 0, done.stdout + done.stderr + "\n".join(said[-5:])
        yield own
    finally:
        own.clean_up()


def test_a_change_syncs_end_to_end_through_sasl_ssl(secured: OwnStack) -> None:
    own = secured
    settings = _settings(own, Path(own.extra_env["ACCT2CRM_KAFKA_SASL_PASSWORD_FILE"]))
    sasl_bootstrap = f"127.0.0.1:{own.ports['kafka_port'] + 5}"
    assert settings.kafka_bootstrap == sasl_bootstrap

    # Connect itself, and the clients it hands Debezium, speak SASL_SSL; no password in its file
    worker_properties = (own.home / "connect").glob("*.properties")
    [text] = [path.read_text() for path in worker_properties]
    assert f"bootstrap.servers={sasl_bootstrap}\n" in text
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert f"\n{prefix}security.protocol=SASL_SSL\n" in text
        assert f"\n{prefix}sasl.mechanism=SCRAM-SHA-512\n" in text
    assert PASSWORD not in text

    applied = own.cli("connectors", "apply", timeout=180)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "RUNNING" in applied.stdout

    code = "SASL" + secrets.token_hex(4).upper()
    with psycopg.connect(own.settings.postgres_conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO accounting.customer (code, name, email) VALUES (%s, %s, %s)",
            [code, f"Customer {code}", "tls@example.vn"],
        )

    token = own.settings.crm_token.get_secret_value()
    deadline = time.monotonic() + 120
    items: list[dict[str, object]] = []
    with httpx.Client(base_url=own.settings.crm_url, timeout=10.0,
                      headers={"Authorization": f"Bearer {token}"}) as crm:
        while not items and time.monotonic() < deadline:
            items = crm.get("/api/customers", params={"code": code}).json()["items"]
            time.sleep(1)
    assert [item["email"] for item in items] == ["tls@example.vn"], "the change never arrived"

    # the worker's result, read back by confluent-kafka through the same listener
    assert [r["action"] for r in code_history(settings, code)] == ["created"]

    report = own.cli("status", "--json", timeout=120)
    assert report.returncode == 0, report.stderr
    found = json.loads(report.stdout)
    assert found["kafka_bootstrap"] == sasl_bootstrap
    assert found["kafka_error"] is None
    assert found["connector"]["state"] == "RUNNING"
    assert found["counts"].get("created", 0) >= 1
    # the SASL password in no log of this stack: Kafka's, Connect's, the worker's, the CRM's
    logs = sorted((own.home / "logs").glob("*.log"))
    assert {p.name for p in logs} >= {"kafka.log", "connect.log", "worker.log"}, logs
    assert not [p.name for p in logs if PASSWORD in p.read_text(errors="replace")]


def test_a_wrong_password_is_said_plainly_and_quickly(
    secured: OwnStack, tmp_path: Path
) -> None:
    own = secured
    wrong_file = _password_file(tmp_path, "wrong", WRONG)
    wrong = OwnStack(own.home, extra_env={**own.extra_env,
                                          **_security_env(own, wrong_file)}, slot=own.slot)

    problem = check_kafka(_settings(own, wrong_file), timeout_s=30)
    assert problem is not None and problem.kind == "auth", problem
    # the broker's certificate checked against the system's CAs instead of the stack's own
    untrusted = _settings(own, wrong_file).model_copy(update={"kafka_ssl_ca_file": None})
    problem = check_kafka(untrusted, timeout_s=30)
    assert problem is not None and problem.kind == "tls", problem

    began = time.monotonic()
    report = wrong.cli("status", "--json", timeout=120)
    took = time.monotonic() - began
    assert report.returncode == 0, report.stderr
    found = json.loads(report.stdout)
    assert "refused the credentials" in found["kafka_error"]
    assert f"SCRAM-SHA-512 as user '{USER}'" in found["kafka_error"]
    assert found["lag"] == -1
    assert took < 45, f"status took {took:.0f}s"
    print(f"status with a wrong password: {took:.1f}s")
    assert WRONG not in report.stdout + report.stderr

    text = wrong.cli("status", timeout=120)
    assert "KAFKA" in text.stdout and "refused the credentials" in text.stdout

    began = time.monotonic()
    worker = wrong.cli("worker", timeout=120)
    took = time.monotonic() - began
    assert worker.returncode != 0
    assert "refused the credentials" in worker.stderr, worker.stderr[-2000:]
    assert WRONG not in worker.stdout + worker.stderr
    assert took < 60, f"the worker took {took:.0f}s to fail"
    print(f"worker with a wrong password failed after {took:.1f}s")


def test_every_topic_the_project_created_carries_its_durability_settings(
    secured: OwnStack,
) -> None:
    """Topic creation by acct2crm, Faust (changelogs), Connect (its own topics) and
    Debezium (its heartbeat topic) all set min.insync.replicas on the topic itself."""
    settings = _settings(secured, Path(secured.extra_env["ACCT2CRM_KAFKA_SASL_PASSWORD_FILE"]))
    admin = admin_client(settings)
    deadline = time.monotonic() + 60  # Debezium makes its heartbeat topic at its first beat
    while True:
        topics = set(admin.list_topics(timeout=30).topics)
        heartbeat = {name for name in topics if name.startswith("__debezium-heartbeat")}
        if heartbeat or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert heartbeat, sorted(topics)
    prefix = settings.topic_prefix
    expected = {
        settings.change_topic, settings.commands_topic, settings.results_topic,
        settings.dlq_topic, "acct2crm-code_to_customer-changelog",
        "acct2crm-row_to_position-changelog", "acct2crm-topic_offsets-changelog",
        f"{prefix}-connect-configs", f"{prefix}-connect-offsets", f"{prefix}-connect-status",
    }
    assert expected <= topics, expected - topics
    checked = sorted(expected | heartbeat)
    futures = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, name) for name in checked]
    )
    unset = []
    for resource, future in futures.items():
        entry = future.result(timeout=30)["min.insync.replicas"]
        # set on the topic when it was created, not inherited from the broker
        if entry.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value:
            unset.append(resource.name)
    assert unset == []
