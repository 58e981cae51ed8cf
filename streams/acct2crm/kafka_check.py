"""Whether Kafka takes our connection, and if not, why, in a few seconds.

librdkafka retries a refused login quietly until a call's timeout, and aiokafka
may retry forever: a wrong password would look like a slow or hung Kafka.
This check asks for metadata with a short deadline and reads the client's
error callback, so ``status`` and the worker can say "credentials refused" or
"TLS handshake failed" instead. Messages name the user and mechanism, never the
password.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from acct2crm.errors import Acct2CrmError
from acct2crm.kafka_security import client_config, describe
from acct2crm.settings import Settings

Kind = Literal["auth", "tls", "unreachable", "config"]
# problems an operator fixes in the configuration (retrying will not help)
CONFIG_KINDS = ("auth", "tls", "config")


@dataclass(frozen=True)
class KafkaProblem:
    kind: Kind
    message: str


def classify(errors: list[KafkaError]) -> Kind:
    """The kind of the worst error seen (pure). Only what the broker or the certificate
    check said for certain counts: a connection dropped mid-handshake on a loaded
    machine is "unreachable" (worth waiting for), never "wrong credentials"."""
    # by code, then the words: a refused TCP connect to a sasl_ssl:// address names
    # "sasl" and "ssl" too, and a timed-out handshake is reported as an SSL error
    texts = [str(error.str()).lower() for error in errors]
    codes = {error.code() for error in errors}
    refused = ("authentication failed", "invalid credentials", "unsupported sasl mechanism",
               "illegal sasl state")
    if KafkaError._AUTHENTICATION in codes and any(w in t for t in texts for w in refused):
        return "auth"
    if any("certificate verify failed" in t or "unknown ca" in t or "bad certificate" in t
           or "certificate required" in t for t in texts):
        return "tls"
    return "unreachable"


def problem_text(kind: Kind, settings: Settings, detail: str) -> str:
    where = f"Kafka at {settings.kafka_bootstrap} ({describe(settings)})"
    if kind == "auth":
        return (
            f"{where} refused the credentials: {detail}; check kafka_sasl_username, "
            "kafka_sasl_password(_file) and kafka_sasl_mechanism"
        )
    if kind == "tls":
        return (
            f"TLS with {where} failed: {detail}; check kafka_ssl_ca_file (and the client "
            "certificate, if the broker asks for one)"
        )
    return f"{where} did not answer: {detail}"


def check_kafka(settings: Settings, timeout_s: float = 10.0) -> KafkaProblem | None:
    """None when the broker answers a metadata request; else what went wrong."""
    seen: list[KafkaError] = []
    try:
        admin = AdminClient(client_config(settings, log_level=0, error_cb=seen.append))
    except (Acct2CrmError, KafkaException, ValueError) as exc:
        return KafkaProblem("config", f"Kafka client configuration: {exc}")
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            if admin.list_topics(timeout=1.0).brokers:
                return None
        except KafkaException as exc:
            last = str(exc.args[0].str() if exc.args else exc)
        admin.poll(0.2)  # serves error_cb: only there does librdkafka say why
        kind = classify(seen)
        if kind in CONFIG_KINDS:  # no point waiting out the deadline
            return KafkaProblem(kind, problem_text(kind, settings, seen[-1].str()))
    detail = seen[-1].str() if seen else (last or f"no answer within {timeout_s:.0f}s")
    kind = classify(seen)
    return KafkaProblem(kind, problem_text(kind, settings, detail))
