"""Kafka security and durability settings become each client's configuration, from one place."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from acct2crm.connect.config import load
from acct2crm.connect.secrets import secret_values
from acct2crm.errors import ConfigError
from acct2crm.kafka_check import classify
from acct2crm.kafka_security import (
    aiokafka_options,
    client_config,
    connect_worker_properties,
    faust_credentials,
    topic_config,
)
from acct2crm.settings import Settings
from devstack import kafka, kafka_connect, kafka_tls
from devstack.paths import StackPaths

PASSWORD = "pa55-w0rd-x"


def _secured(tmp_path: Path, **extra: Any) -> Settings:
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed by these tests\n")
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "kafka_bootstrap": "kafka-1.example.com:9096",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "sync",
        "kafka_sasl_password": PASSWORD,
        "kafka_ssl_ca_file": ca,
        "kafka_replication_factor": 3,
        "kafka_min_insync_replicas": 2,
    }
    values.update(extra)
    return Settings(**values)


def test_the_defaults_are_todays_local_stack(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert client_config(settings) == {
        "bootstrap.servers": settings.kafka_bootstrap, "security.protocol": "PLAINTEXT",
    }
    assert aiokafka_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None
    assert topic_config(settings) == {"min.insync.replicas": "1"}
    assert connect_worker_properties(settings) == {
        f"{prefix}security.protocol": "PLAINTEXT"
        for prefix in ("", "producer.", "consumer.", "admin.")
    }
    properties = kafka.server_properties(settings, StackPaths.of(settings))
    assert "SASL" not in properties


def _real_ca(folder: Path) -> Path:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
         "-out", "real-ca.pem", "-days", "2", "-subj", "/CN=test CA"],
        cwd=folder, check=True, capture_output=True, timeout=60,
    )
    return folder / "real-ca.pem"


def test_confluent_aiokafka_and_faust_get_the_same_sasl_ssl(tmp_path: Path) -> None:
    settings = _secured(tmp_path, kafka_ssl_ca_file=_real_ca(tmp_path))
    config = client_config(settings, **{"group.id": "g"})
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("sync", PASSWORD)
    assert config["ssl.ca.location"] == str(tmp_path / "real-ca.pem")
    assert config["group.id"] == "g"

    options = aiokafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("sync", PASSWORD)
    assert options["ssl_context"].check_hostname

    credentials = faust_credentials(settings)
    assert credentials is not None
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"  # type: ignore[union-attr]
    assert PASSWORD not in repr(credentials)

    with pytest.raises(ConfigError, match="holds no usable PEM CA"):
        aiokafka_options(_secured(tmp_path))  # its CA file is no certificate


def test_password_from_a_file_first_line_read_when_a_client_is_made(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("first-one\n")
    settings = _secured(tmp_path, kafka_sasl_password=None, kafka_sasl_password_file=secret)
    assert client_config(settings)["sasl.password"] == "first-one"
    secret.write_text("rotated\nignored\n")
    assert client_config(settings)["sasl.password"] == "rotated"
    secret.unlink()
    with pytest.raises(ConfigError, match="kafka_sasl_password_file"):
        client_config(settings)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"kafka_sasl_username": None}, "needs kafka_sasl_username"),
        ({"kafka_sasl_password": None}, "needs kafka_sasl_password"),
        ({"kafka_sasl_password_file": Path("/x")}, "not both"),
        ({"kafka_security_protocol": "PLAINTEXT"}, "does not use TLS"),
        ({"kafka_ssl_cert_file": Path("/c.pem")}, "go together"),
        ({"kafka_min_insync_replicas": 4}, "exceeds kafka_replication_factor 3"),
    ],
)
def test_combinations_no_client_could_use_stop_at_start(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _secured(tmp_path, **extra)


def test_a_bad_secret_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCT2CRM_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ConfigError, match="kafka_security_protocol = 'TLS'"):
        Settings()


def test_connect_gets_references_never_the_password(tmp_path: Path) -> None:
    settings = _secured(tmp_path)
    properties = connect_worker_properties(settings)
    reference = f"${{file:{settings.connect_secrets_file}:kafka_sasl_password}}"
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert properties[f"{prefix}security.protocol"] == "SASL_SSL"
        assert properties[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert properties[f"{prefix}sasl.jaas.config"] == (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="sync" password="{reference}";'
        )
        assert properties[f"{prefix}ssl.truststore.type"] == "PEM"
    assert PASSWORD not in str(properties)
    assert secret_values(settings)["kafka_sasl_password"] == PASSWORD

    text = kafka_connect.worker_properties(settings, StackPaths.of(settings))
    assert PASSWORD not in text
    assert "\nbootstrap.servers=kafka-1.example.com:9096\n" in text
    for store in ("config", "offset", "status"):
        assert f"\n{store}.storage.replication.factor=3\n" in text
        assert f"\n{store}.storage.min.insync.replicas=2\n" in text


def test_client_certificates_reach_every_client(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n")
    settings = _secured(tmp_path, kafka_security_protocol="SSL", kafka_sasl_password=None,
                        kafka_ssl_cert_file=cert, kafka_ssl_key_file=key)
    config = client_config(settings)
    assert (config["ssl.certificate.location"], config["ssl.key.location"]) == (
        str(cert), str(key))
    assert "sasl.mechanism" not in config
    properties = connect_worker_properties(settings)
    assert properties["producer.ssl.keystore.type"] == "PEM"
    assert properties["producer.ssl.keystore.key"].startswith("${file:")
    values = secret_values(settings)
    assert "BBBB" in values["kafka_ssl_keystore_key"]
    assert "AAAA" in values["kafka_ssl_keystore_certificate_chain"]
    assert "BBBB" not in str(properties)


def test_debezium_creates_its_topics_with_the_replication_settings(tmp_path: Path) -> None:
    [definition] = load(_secured(tmp_path))
    assert definition.config["topic.creation.default.replication.factor"] == "3"
    assert definition.config["topic.creation.default.min.insync.replicas"] == "2"


def test_local_broker_adds_a_sasl_ssl_listener_only_when_asked(tmp_path: Path) -> None:
    settings = _secured(tmp_path, kafka_bootstrap=None, kafka_sasl_ssl_port=60001,
                        kafka_port=60000)
    assert settings.kafka_bootstrap == "127.0.0.1:60001"  # the clients use the secured one
    paths = StackPaths.of(settings)
    text = kafka.server_properties(settings, paths)
    assert ",SASL_SSL://127.0.0.1:60001\n" in text
    assert "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT," \
        "SASL_SSL:SASL_SSL\n" in text
    assert "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512\n" in text
    assert f"listener.name.sasl_ssl.ssl.keystore.location={kafka_tls.keystore_file(paths)}\n" \
        in text
    assert PASSWORD not in text
    assert kafka_tls.format_arguments(settings) == [
        "--add-scram", f"SCRAM-SHA-512=[name=sync,password={PASSWORD}]"]
    plain = _secured(tmp_path, kafka_bootstrap=None, kafka_sasl_ssl_port=60001,
                     kafka_port=60000, kafka_security_protocol="PLAINTEXT",
                     kafka_ssl_ca_file=None)
    assert plain.kafka_bootstrap == "127.0.0.1:60000"


def test_kafka_problems_are_classified_by_code_before_text() -> None:
    refused = KafkaError(KafkaError._TRANSPORT,
                         "sasl_ssl://127.0.0.1:1/bootstrap: Connect failed: Connection refused")
    assert classify([refused]) == "unreachable"
    auth = KafkaError(
        KafkaError._AUTHENTICATION,
        "SASL authentication error: Authentication failed during authentication due to "
        "invalid credentials with SASL mechanism SCRAM-SHA-512",
    )
    assert classify([refused, auth]) == "auth"
    tls = KafkaError(KafkaError._SSL, "SSL handshake failed: error:0A000086:SSL routines::"
                     "certificate verify failed: broker certificate could not be verified")
    assert classify([tls]) == "tls"
    # a loaded machine: the handshake dropped or timed out says nothing about settings
    dropped = KafkaError(KafkaError._SSL, "SSL handshake failed: Disconnected: connecting "
                         "to a PLAINTEXT broker listener?")
    slow = KafkaError(KafkaError._AUTHENTICATION, "SASL authentication timed out")
    assert classify([dropped, slow]) == "unreachable"


def test_the_managed_kafka_example_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "managed-kafka.example.toml"
    monkeypatch.setenv("ACCT2CRM_CONFIG", str(example))
    settings = Settings()
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)
    assert settings.configured("kafka_bootstrap")


def test_a_password_with_quotes_survives_jaas_quoting(tmp_path: Path) -> None:
    settings = _secured(tmp_path, kafka_sasl_password='a"b\\c')
    # read back by Connect as JAAS: \" is a quote and \\ a backslash inside "..."
    assert secret_values(settings)["kafka_sasl_password"] == 'a\\"b\\\\c'
    assert client_config(settings)["sasl.password"] == 'a"b\\c'  # librdkafka takes it as is


def test_every_kafka_client_of_the_project_takes_its_config_from_one_place() -> None:
    """A client built from a bare bootstrap would ignore TLS and SASL: the project's
    code names ``bootstrap.servers`` only in ``kafka_security.py`` (and the local
    Connect worker's own properties file)."""
    repo = Path(__file__).resolve().parents[2]
    allowed = {
        repo / "streams/acct2crm/kafka_security.py",
        repo / "stack/devstack/kafka_connect.py",
    }
    offenders = [
        str(path.relative_to(repo))
        for folder in ("streams", "stack")
        for path in (repo / folder).rglob("*.py")
        if path not in allowed and '"bootstrap.servers"' in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
