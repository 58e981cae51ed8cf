"""docker-compose.yml describes the same stack as the native one (stack/README.md).

Same service names, same loopback host ports (the Settings defaults, and the
same ACCT2CRM_* variables override both), the official images at the versions
the native stack resolves, and the project's own image for crm and worker.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from acct2crm.settings import Settings
from devstack.paths import ACCOUNTING_SQL

# found by its pyproject, so the file may sit at any depth under tests/
REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
COMPOSE = REPO / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}")
# what compose must be given (environment or .env): no default may stand in for a secret
SECRETS = {
    "ACCT2CRM_PG_PASSWORD": "pg_password",
    "ACCT2CRM_PG_REPLICATION_PASSWORD": "pg_replication_password",
    "ACCT2CRM_CRM_TOKEN": "crm_token",
}

NATIVE_SERVICES = ("postgres", "kafka", "connect", "crm", "worker")
# service -> the setting that holds its host port in the native stack
PORT_SETTING = {
    "postgres": "pg_port",
    "kafka": "kafka_port",
    "connect": "connect_port",
    "crm": "crm_port",
    "worker": "worker_port",
}


def default(name: str) -> Any:
    return Settings.model_fields[name].default


class MissingVariable(LookupError):
    pass


def interpolate(text: str, env: dict[str, str] | None = None, *, secrets: bool = True) -> str:
    """Compose's ``${NAME:-default}`` and ``${NAME:?message}`` with ``env``.

    Secrets are given their local-stack values unless ``env`` says otherwise,
    as a user's ``.env`` would; a required variable left unset raises.
    """
    given = (
        {name: default(field).get_secret_value() for name, field in SECRETS.items()}
        if secrets else {}
    )
    given.update(env or {})

    def value(match: re.Match[str]) -> str:
        name, kind, rest = match.group(1), match.group(2), match.group(3) or ""
        if name in given:
            return str(given[name])
        if kind == ":?":
            raise MissingVariable(f"{name}: {rest}")
        return rest

    return VARIABLE.sub(value, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def published(
    service: dict[str, Any], env: dict[str, str] | None = None
) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each ``ports`` entry."""
    result = []
    for entry in service.get("ports", []):
        address, host, container = interpolate(str(entry), env).split(":")
        result.append((address, int(host), int(container)))
    return result


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def test_the_native_services_are_all_there(services: dict[str, Any]) -> None:
    assert set(NATIVE_SERVICES) <= set(services)
    # the only extra service is the one-shot that applies connectors/ (as `up` does)
    assert set(services) - set(NATIVE_SERVICES) == {"connectors"}
    assert command_of(services["connectors"]) == ["acct2crm", "connectors", "apply"]


@pytest.mark.parametrize("name", NATIVE_SERVICES)
def test_published_ports_are_the_settings_defaults_on_loopback(
    services: dict[str, Any], name: str
) -> None:
    assert [(a, h) for a, h, _ in published(services[name])] == [
        ("127.0.0.1", default(PORT_SETTING[name]))
    ]


@pytest.mark.parametrize("name", NATIVE_SERVICES)
def test_ports_follow_the_same_variables_as_the_native_stack(
    services: dict[str, Any], name: str
) -> None:
    variable = f"ACCT2CRM_{PORT_SETTING[name].upper()}"
    moved = published(services[name], {variable: "61234"})
    assert [h for _, h, _ in moved] == [61234]


def test_no_service_but_the_native_ones_publishes_a_port(services: dict[str, Any]) -> None:
    assert not services["connectors"].get("ports")


def test_every_native_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name in NATIVE_SERVICES:
        assert services[name]["healthcheck"]["test"], name


def test_postgres_is_official_with_logical_wal_and_the_accounting_sql(
    services: dict[str, Any], compose: dict[str, Any]
) -> None:
    postgres = services["postgres"]
    assert postgres["image"].split(":")[0] == "postgres"
    assert "wal_level=logical" in command_of(postgres)
    mounts = [str(v).split(":") for v in postgres["volumes"]]
    sql_mount = next(m for m in mounts if m[0].endswith(".sql"))
    assert (REPO / sql_mount[0]).resolve() == ACCOUNTING_SQL
    assert sql_mount[1].startswith("/docker-entrypoint-initdb.d/")
    assert postgres["environment"]["POSTGRES_DB"] == default("pg_database")
    assert postgres["environment"]["POSTGRES_USER"] == default("pg_user")
    init = compose["configs"]["postgres-replication"]["content"]
    assert f"CREATE ROLE {default('pg_replication_user')} WITH LOGIN REPLICATION" in init
    assert f"CREATE PUBLICATION {default('pg_publication')} FOR TABLE accounting.customer" in init


def test_kafka_is_apache_kafka_in_kraft_combined_mode(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    assert kafka["image"] == f"apache/kafka:{default('kafka_version')}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    advertised = interpolate(env["KAFKA_ADVERTISED_LISTENERS"])
    assert f"127.0.0.1:{default('kafka_port')}" in advertised


def test_connect_is_debezium_at_the_native_version(services: dict[str, Any]) -> None:
    image = services["connect"]["image"]
    repository, tag = image.rsplit(":", 1)
    assert repository in ("quay.io/debezium/connect", "debezium/connect")
    assert tag == default("debezium_version")
    env = services["connect"]["environment"]
    assert env["CONNECT_CONFIG_PROVIDERS"] == "file"


def test_crm_and_worker_are_built_from_the_project_dockerfile(services: dict[str, Any]) -> None:
    # the worker's image is the product alone; the reference CRM has an image of its own
    for name in ("worker", "connectors"):
        assert services[name]["build"] == {"context": ".", "target": "product"}, name
        assert services[name]["image"] == services["worker"]["image"]
    assert services["crm"]["build"] == {"context": ".", "target": "refcrm"}
    assert services["crm"]["image"] != services["worker"]["image"]
    crm = command_of(services["crm"])
    assert crm[:3] == ["python", "-m", "refcrm"]
    assert "--fault-injection" not in crm, "fault injection is never on in a default run"
    assert crm[crm.index("--port") + 1] == "58080"
    assert command_of(services["worker"]) == ["acct2crm", "worker"]


def test_services_share_the_acct2crm_settings(services: dict[str, Any]) -> None:
    for name in ("crm", "worker", "connectors"):
        env = services[name]["environment"]
        assert env["ACCT2CRM_PG_HOST"] == "postgres"
        assert env["ACCT2CRM_KAFKA_BOOTSTRAP"] == "kafka:19092"
        assert env["ACCT2CRM_CONNECT_URL"] == "http://connect:8083"
        assert interpolate(env["ACCT2CRM_CRM_TOKEN"]) == default("crm_token").get_secret_value()
        assert interpolate(env["ACCT2CRM_REFCRM_FAULT_INJECTION"]) == "false"
        unknown = {
            key for key in env
            if key.startswith("ACCT2CRM_")
            and key.removeprefix("ACCT2CRM_").lower() not in Settings.model_fields
        }
        assert not unknown, f"{name}: variables no setting reads: {unknown}"


def dockerfile_stages() -> dict[str, str]:
    """Each ``FROM ... AS name`` stage of the Dockerfile and its text."""
    text = (REPO / "Dockerfile").read_text()
    parts = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].split(" AS ")[-1].strip(): "FROM " + part for part in parts}


def test_dockerfile_product_image_carries_the_product_alone() -> None:
    stages = dockerfile_stages()
    assert set(stages) == {"base", "refcrm", "product"}
    assert re.search(r"^FROM python:3\.11-slim AS base$", stages["base"], re.MULTILINE)
    assert "COPY streams ./streams" in stages["base"]
    assert re.search(r"^RUN pip install \.", stages["base"], re.MULTILINE)
    # the workbench (stack/: local stack launcher, reference CRM) only in the CRM's image
    assert "stack" not in stages["base"] and "stack" not in stages["product"]
    assert "COPY stack ./stack" in stages["refcrm"]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".acct2crm", ".acct2crm-test", ".venv"} <= set(ignored)


def test_the_worker_may_reach_the_crm_over_the_private_network() -> None:
    from acct2crm.crm.url_check import check_crm_url

    text = (REPO / "docker-compose.yml").read_text()
    env = yaml.safe_load(text)["services"]["worker"]["environment"]
    allowed = interpolate(str(env["ACCT2CRM_CRM_ALLOW_INSECURE_HTTP"])).lower() == "true"
    check_crm_url(env["ACCT2CRM_CRM_URL"], allow_insecure_http=allowed)


def test_no_secret_has_a_default_and_compose_names_the_missing_one() -> None:
    text = COMPOSE.read_text()
    for name in SECRETS:
        uses = [m for m in VARIABLE.finditer(text) if m.group(1) == name]
        assert uses, name
        for use in uses:
            assert use.group(2) == ":?", f"{use.group(0)} must be required (no default)"
            assert name in use.group(3), f"{use.group(0)} must say what to set"
    for name in SECRETS:
        others = {k: "x" for k in SECRETS if k != name}
        with pytest.raises(MissingVariable, match=name):
            interpolate(text, others, secrets=False)
    given = interpolate(text, {k: "x" for k in SECRETS}, secrets=False)
    for field in SECRETS.values():
        assert default(field).get_secret_value() not in given, field


def test_the_replication_password_never_reaches_sql_text(compose: dict[str, Any]) -> None:
    init = compose["configs"]["postgres-replication"]["content"]
    assert "ACCT2CRM_PG_REPLICATION_PASSWORD}" not in init, "pasted by compose into the SQL"
    # psql receives it as a variable and quotes it itself as a literal
    assert '-v repl_password="$$ACCT2CRM_PG_REPLICATION_PASSWORD"' in init
    assert "PASSWORD :'repl_password'" in init
    assert "<<'SQL'" in init, "the here-document must not let the shell expand anything"
    postgres_env = compose["services"]["postgres"]["environment"]
    assert postgres_env["ACCT2CRM_PG_REPLICATION_PASSWORD"].startswith(
        "${ACCT2CRM_PG_REPLICATION_PASSWORD:?"
    )
