"""The Docker path registers the same connector as the native one, hosts aside.

The connector is rendered from the packaged template twice: with the settings
the compose file gives its ``connectors`` service (hosts ``postgres``,
``kafka``, ...), as that container would read them from its environment, and
with the native defaults. Everything but hosts, ports and file paths must be
equal; the hosts and ports must be the compose services', and the password
reference must name the file the ``connect`` container writes and may read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from acct2crm.connect.config import ConnectorDefinition, load
from acct2crm.settings import Settings

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
COMPOSE = REPO / "docker-compose.yml"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
FILE_REFERENCE = re.compile(r"^\$\{file:(?P<path>[^:]+):(?P<key>[a-z_]+)\}$")
HOST_AND_PORT = ("database.hostname", "database.port")
# what a user exports before `docker compose up` where the file has no default
USER_ENV = {
    "ACCT2CRM_PG_PASSWORD": "user-pg-password",
    "ACCT2CRM_PG_REPLICATION_PASSWORD": "user-replication-password",
    "ACCT2CRM_CRM_TOKEN": "user-crm-token",
}


def interpolate(text: str) -> str:
    """Compose's variable forms, with ``USER_ENV`` set and nothing else."""

    def value(match: re.Match[str]) -> str:
        name, form, rest = match.groups()
        if name in USER_ENV:
            return USER_ENV[name]
        assert form is None or "?" not in form, f"${{{name}}} is required and not set"
        return rest or ""

    return VARIABLE.sub(value, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ACCT2CRM_"):
            monkeypatch.delenv(name)


def compose_connector(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> ConnectorDefinition:
    """What `docker compose run connectors` applies: its environment, read as Settings."""
    clear_env(monkeypatch)
    environment = compose["services"]["connectors"]["environment"]
    for name, raw in environment.items():
        monkeypatch.setenv(str(name), interpolate(str(raw)))
    [definition] = load(Settings())
    return definition


def native_connector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConnectorDefinition:
    """What `acct2crm up` applies with every setting at its default."""
    clear_env(monkeypatch)
    monkeypatch.setenv("ACCT2CRM_HOME", str(tmp_path))  # no config file there
    [definition] = load(Settings())
    return definition


def container_port(service: dict[str, Any]) -> str:
    [entry] = service["ports"]
    return interpolate(str(entry)).rsplit(":", 1)[1]


def test_the_compose_connector_is_the_native_one_but_for_hosts_ports_and_paths(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    native = native_connector(tmp_path, monkeypatch)
    docker = compose_connector(compose, monkeypatch)
    assert docker.name == native.name
    assert set(docker.config) == set(native.config)

    aside = {*HOST_AND_PORT, "database.password"}
    differing = {
        key for key in native.config
        if key not in aside and docker.config[key] != native.config[key]
    }
    assert not differing, {k: (native.config[k], docker.config[k]) for k in sorted(differing)}

    # the password stays a reference, to the same key, only the file's place differs
    native_ref = FILE_REFERENCE.match(native.config["database.password"])
    docker_ref = FILE_REFERENCE.match(docker.config["database.password"])
    assert native_ref is not None and docker_ref is not None
    assert docker_ref["key"] == native_ref["key"]
    assert USER_ENV["ACCT2CRM_PG_REPLICATION_PASSWORD"] not in str(docker.config)


def test_the_compose_connector_reaches_postgres_by_its_service_name_and_port(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = compose_connector(compose, monkeypatch)
    host, port = (docker.config[key] for key in HOST_AND_PORT)
    assert host in compose["services"]
    assert port == container_port(compose["services"][host])


def test_the_password_reference_names_the_file_connect_writes_and_may_read(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = compose_connector(compose, monkeypatch)
    reference = FILE_REFERENCE.match(docker.config["database.password"])
    assert reference is not None
    connect = compose["services"]["connect"]
    allowed = connect["environment"]["CONNECT_CONFIG_PROVIDERS_FILE_PARAM_ALLOWED_PATHS"]
    assert any(reference["path"].startswith(p.rstrip("/") + "/") for p in allowed.split(","))
    script = "\n".join(str(line) for line in connect["command"])
    written = re.search(r"printf '([a-z_]+)=%s\\n' .*\n?\s*> (\S+)", script)
    assert written is not None, script
    assert (written[1], written[2]) == (reference["key"], reference["path"])


def test_kafka_keeps_its_data_on_a_named_volume(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    mounts = dict(str(v).split(":", 1) for v in kafka["volumes"])
    volume = next(name for name, target in mounts.items() if target == log_dirs)
    assert volume in compose["volumes"]  # a named volume, not a host path or the container


def test_compose_and_readme_say_how_to_register_the_connector(compose: dict[str, Any]) -> None:
    command = "docker compose run --rm connectors"
    assert command in COMPOSE.read_text()
    assert command in (REPO / "README.md").read_text()
    assert compose["services"]["connectors"]["command"] == ["acct2crm", "connectors", "apply"]
