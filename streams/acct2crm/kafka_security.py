"""The one place that turns the Kafka settings into each client's own configuration.

Four kinds of client talk to Kafka: confluent-kafka (the command line, topic
creation, status), aiokafka through Faust (the worker) and directly (the offset
ledger's range reads), and the Java clients inside Kafka Connect. Each spells
TLS and SASL differently; deriving all of them here from one set of settings
means a worker can never reach the broker one way while Connect or ``status``
tries another. The topics the project creates take their replication factor
and ``min.insync.replicas`` from here too.

A password never appears in what this module returns for Connect: the Connect
properties name ``${file:<secrets file>:kafka_sasl_password}``, resolved by
Connect's FileConfigProvider (see ``connect/secrets.py``).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acct2crm.errors import ConfigError
from acct2crm.settings import Settings

if TYPE_CHECKING:
    import faust

SASL_PROTOCOLS = ("SASL_SSL", "SASL_PLAINTEXT")
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
# the key Connect's FileConfigProvider reads the SASL password from
CONNECT_PASSWORD_KEY = "kafka_sasl_password"  # noqa: S105 - a key name
# ... and the client key and certificate chain (PEM text), for mutual TLS
CONNECT_KEY_KEY = "kafka_ssl_keystore_key"
CONNECT_CHAIN_KEY = "kafka_ssl_keystore_certificate_chain"
# Connect's clients: the worker itself and what it hands its connectors
CONNECT_PREFIXES = ("", "producer.", "consumer.", "admin.")
JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in SASL_PROTOCOLS


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in TLS_PROTOCOLS


def check(settings: Settings) -> None:
    """Refuse combinations no client could use; called when the settings are read."""
    problems = []
    if uses_sasl(settings):
        if not settings.kafka_sasl_username:
            problems.append(
                f"kafka_security_protocol {settings.kafka_security_protocol} needs "
                "kafka_sasl_username"
            )
        if settings.kafka_sasl_password is None and settings.kafka_sasl_password_file is None:
            problems.append(
                f"kafka_security_protocol {settings.kafka_security_protocol} needs "
                "kafka_sasl_password or kafka_sasl_password_file"
            )
    if settings.kafka_sasl_password is not None and settings.kafka_sasl_password_file is not None:
        problems.append("set kafka_sasl_password or kafka_sasl_password_file, not both")
    if (settings.kafka_ssl_cert_file is None) != (settings.kafka_ssl_key_file is None):
        problems.append("kafka_ssl_cert_file and kafka_ssl_key_file go together")
    tls_files = (settings.kafka_ssl_ca_file, settings.kafka_ssl_cert_file)
    if not uses_tls(settings) and any(path is not None for path in tls_files):
        problems.append(
            "kafka_ssl_* files are set but kafka_security_protocol "
            f"{settings.kafka_security_protocol} does not use TLS (SSL or SASL_SSL)"
        )
    if settings.kafka_min_insync_replicas > settings.kafka_replication_factor:
        problems.append(
            f"kafka_min_insync_replicas {settings.kafka_min_insync_replicas} exceeds "
            f"kafka_replication_factor {settings.kafka_replication_factor}: no write could succeed"
        )
    if problems:
        raise ConfigError("invalid Kafka configuration: " + "; ".join(problems))


def sasl_password(settings: Settings) -> str:
    """The SASL password, from the setting or its file (read now, first line, so a
    rotated file is picked up by the next client made)."""
    if settings.kafka_sasl_password is not None:
        return settings.kafka_sasl_password.get_secret_value()
    path = settings.kafka_sasl_password_file
    if path is None:
        raise ConfigError("no Kafka SASL password: set kafka_sasl_password(_file)")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"kafka_sasl_password_file {path} cannot be read: {exc.strerror}"
        ) from exc
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"kafka_sasl_password_file {path} is empty")
    return lines[0]


def _readable(name: str, path: Path) -> str:
    if not path.is_file():
        raise ConfigError(f"{name} {path} is not an existing file")
    return str(path)


# ------------------------------------------------------------- confluent-kafka
def confluent_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's security properties (merge into any Producer/Consumer/AdminClient)."""
    config: dict[str, Any] = {"security.protocol": settings.kafka_security_protocol}
    if uses_sasl(settings):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = sasl_password(settings)
    if uses_tls(settings):
        if settings.kafka_ssl_ca_file is not None:
            config["ssl.ca.location"] = _readable("kafka_ssl_ca_file", settings.kafka_ssl_ca_file)
        if settings.kafka_ssl_cert_file is not None and settings.kafka_ssl_key_file is not None:
            config["ssl.certificate.location"] = _readable(
                "kafka_ssl_cert_file", settings.kafka_ssl_cert_file
            )
            config["ssl.key.location"] = _readable(
                "kafka_ssl_key_file", settings.kafka_ssl_key_file
            )
    return config


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """A complete confluent-kafka configuration: bootstrap, security, then ``extra``."""
    return {"bootstrap.servers": settings.kafka_bootstrap, **confluent_config(settings), **extra}


# ------------------------------------------------------------ aiokafka / Faust
def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for aiokafka (None without TLS); verifies the broker's name."""
    if not uses_tls(settings):
        return None
    cafile = settings.kafka_ssl_ca_file
    try:
        context = ssl.create_default_context(
            cafile=_readable("kafka_ssl_ca_file", cafile) if cafile is not None else None
        )
    except ssl.SSLError as exc:
        raise ConfigError(f"kafka_ssl_ca_file {cafile} holds no usable PEM CA: {exc}") from exc
    cert, key = settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(
                _readable("kafka_ssl_cert_file", cert), _readable("kafka_ssl_key_file", key)
            )
        except ssl.SSLError as exc:
            raise ConfigError(
                f"kafka_ssl_cert_file {cert} / kafka_ssl_key_file {key}: not a usable PEM "
                f"certificate and unencrypted key: {exc}"
            ) from exc
    return context


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if uses_sasl(settings):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = sasl_password(settings)
    return options


def faust_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's ``broker_credentials`` (None for PLAINTEXT, Faust's default)."""
    import faust  # noqa: PLC0415 - the command line imports this module without Faust

    if uses_sasl(settings):
        # Faust picks SASL_SSL when given a context, SASL_PLAINTEXT otherwise
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=sasl_password(settings),
            ssl_context=ssl_context(settings),
            mechanism=settings.kafka_sasl_mechanism,
        )
    context = ssl_context(settings)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


# ---------------------------------------------------------------------- topics
def topic_config(settings: Settings) -> dict[str, str]:
    """Topic-level settings for every topic the project creates."""
    return {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}


# ----------------------------------------------------------------- Kafka Connect
def connect_client_properties(settings: Settings) -> dict[str, str]:
    """Java client security properties (no prefix); the password stays a reference."""
    props: dict[str, str] = {"security.protocol": settings.kafka_security_protocol}
    if uses_sasl(settings):
        module = JAAS_MODULES[settings.kafka_sasl_mechanism]
        reference = _connect_secret(settings, CONNECT_PASSWORD_KEY)
        props["sasl.mechanism"] = settings.kafka_sasl_mechanism
        props["sasl.jaas.config"] = (
            f'{module} required username="{jaas_quoted(settings.kafka_sasl_username or "")}" '
            f'password="{reference}";'
        )
    if uses_tls(settings):
        if settings.kafka_ssl_ca_file is not None:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(settings.kafka_ssl_ca_file)
        if settings.kafka_ssl_cert_file is not None:
            # PEM values, not a PEM file: Java's PEM keystore file demands an encrypted key
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.key"] = _connect_secret(settings, CONNECT_KEY_KEY)
            props["ssl.keystore.certificate.chain"] = _connect_secret(settings, CONNECT_CHAIN_KEY)
    return props


def jaas_quoted(value: str) -> str:
    """``value`` as it must sit between the double quotes of a JAAS option."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _connect_secret(settings: Settings, key: str) -> str:
    """A reference Connect's FileConfigProvider resolves from the Connect secrets file."""
    return f"${{file:{settings.connect_secrets_file}:{key}}}"


def connect_worker_properties(settings: Settings) -> dict[str, str]:
    """The security properties for a Connect worker, for itself and for the producers,
    consumers and admin clients it gives its connectors."""
    base = connect_client_properties(settings)
    return {prefix + key: value for prefix in CONNECT_PREFIXES for key, value in base.items()}


def connect_topic_settings(settings: Settings) -> dict[str, str]:
    """Replication of Connect's own topics (configs, offsets, status)."""
    out = {}
    for store in ("config", "offset", "status"):
        out[f"{store}.storage.replication.factor"] = str(settings.kafka_replication_factor)
        out[f"{store}.storage.min.insync.replicas"] = str(settings.kafka_min_insync_replicas)
    return out


def connect_secret_values(settings: Settings) -> dict[str, str]:
    """What the Connect secrets file must hold for the properties above."""
    values = {}
    if uses_sasl(settings):
        values[CONNECT_PASSWORD_KEY] = jaas_quoted(sasl_password(settings))
    if uses_tls(settings) and settings.kafka_ssl_cert_file and settings.kafka_ssl_key_file:
        key = Path(_readable("kafka_ssl_key_file", settings.kafka_ssl_key_file)).read_text()
        chain = Path(_readable("kafka_ssl_cert_file", settings.kafka_ssl_cert_file)).read_text()
        values[CONNECT_KEY_KEY] = key.strip()
        values[CONNECT_CHAIN_KEY] = chain.strip()
    return values


def describe(settings: Settings) -> str:
    """How the clients connect, for messages (never the password)."""
    text: str = settings.kafka_security_protocol
    if uses_sasl(settings):
        text += f" {settings.kafka_sasl_mechanism} as user '{settings.kafka_sasl_username}'"
    return text
