"""The local broker's optional SASL_SSL listener: a CA and a broker certificate of its own.

Set ``kafka_sasl_ssl_port`` and the local Kafka listens there too, with TLS
(a certificate for 127.0.0.1 and localhost, signed by a CA made once per state
folder, ``<home>/kafka/tls/ca.pem``: point ``kafka_ssl_ca_file`` at it) and
SCRAM: the user and password of the ``kafka_sasl_*`` settings are added when
the storage is formatted. The PLAINTEXT listener stays for the broker's own
traffic. This makes the project's clients provable against what a managed
Kafka asks of them, on one machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePath

from acct2crm.errors import StackError
from acct2crm.kafka_security import sasl_password
from acct2crm.settings import Settings
from devstack import safe_fs
from devstack.paths import StackPaths

LISTENER = "SASL_SSL"
# the keystore is a mode-600 file in a private folder: its password guards nothing more
KEYSTORE_PASSWORD = "acct2crm-local"  # noqa: S105
OPENSSL_TIMEOUT_S = 60.0
DAYS = "825"


def tls_dir(paths: StackPaths) -> Path:
    return paths.kafka_dir / "tls"


def ca_file(paths: StackPaths) -> Path:
    return tls_dir(paths) / "ca.pem"


def keystore_file(paths: StackPaths) -> Path:
    return tls_dir(paths) / "broker.p12"


def listener_properties(settings: Settings, paths: StackPaths) -> dict[str, str]:
    """What the broker needs for the SASL_SSL listener (pure); empty when it is off."""
    if settings.kafka_sasl_ssl_port is None:
        return {}
    mechanism = _scram_mechanism(settings)
    prefix = f"listener.name.{LISTENER.lower()}."
    return {
        f"{prefix}sasl.enabled.mechanisms": mechanism,
        f"{prefix}{mechanism.lower()}.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"{prefix}ssl.keystore.type": "PKCS12",
        f"{prefix}ssl.keystore.location": str(keystore_file(paths)),
        f"{prefix}ssl.keystore.password": KEYSTORE_PASSWORD,
    }


def _scram_mechanism(settings: Settings) -> str:
    mechanism = settings.kafka_sasl_mechanism
    if not mechanism.startswith("SCRAM-"):
        raise StackError(
            f"the local SASL_SSL listener speaks SCRAM only; kafka_sasl_mechanism is {mechanism}"
        )
    return mechanism


def format_arguments(settings: Settings) -> list[str]:
    """``--add-scram`` for the storage format: the clients' user, known from the start."""
    if settings.kafka_sasl_ssl_port is None:
        return []
    mechanism = _scram_mechanism(settings)
    user = settings.kafka_sasl_username
    if not user:
        raise StackError("kafka_sasl_ssl_port is set: set kafka_sasl_username and its password")
    password = sasl_password(settings)
    for value in (user, password):
        if any(char in value for char in ',]["= '):
            raise StackError(
                "the local SASL_SSL listener takes a user and password without , ] [ \" = "
                "or spaces (they cannot be passed to Kafka's storage format)"
            )
    return ["--add-scram", f"{mechanism}=[name={user},password={password}]"]


def ensure_certificates(paths: StackPaths) -> None:
    """A CA and a broker certificate (127.0.0.1, localhost), made once per state folder."""
    if ca_file(paths).is_file() and keystore_file(paths).is_file():
        return
    safe_fs.ensure_dir(paths.home, PurePath("kafka", "tls"))
    safe_fs.write_file(
        paths.home, PurePath("kafka", "tls", "broker.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", DAYS, "-subj", "/CN=acct2crm local CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
         "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "broker.crt", "-days", DAYS, "-extfile", "broker.ext"],
        ["pkcs12", "-export", "-in", "broker.crt", "-inkey", "broker.key", "-name", "broker",
         "-out", "broker.p12", "-passout", f"pass:{KEYSTORE_PASSWORD}"],
    ]
    for step in steps:
        _openssl(step, tls_dir(paths))


def _openssl(args: list[str], cwd: Path) -> None:
    try:
        done = subprocess.run(
            ["openssl", *args], capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S,
            check=False, cwd=cwd, umask=0o077,
        )
    except FileNotFoundError as exc:
        raise StackError("openssl is needed for the local SASL_SSL listener") from exc
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"openssl {args[0]} did not finish in time") from exc
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise StackError(f"openssl {args[0]} failed: {lines[-1] if lines else 'no output'}")
