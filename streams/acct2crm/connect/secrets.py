"""Secrets handed to Kafka Connect through its FileConfigProvider.

The connector templates name ``${file:<this file>:key}`` instead of a
password, so no secret sits in the repository, in Connect's config topic or in
its REST answers. The file (``connect_secrets_file``) must be readable by the
Connect worker: on one host it is written here, mode 600, before every apply.
"""

from __future__ import annotations

import os
from pathlib import Path

from acct2crm.kafka_security import connect_secret_values
from acct2crm.private_file import PRIVATE_DIR, write_private
from acct2crm.settings import Settings


def secret_values(settings: Settings) -> dict[str, str]:
    return {
        "pg_replication_password": settings.pg_replication_password.get_secret_value(),
        **connect_secret_values(settings),  # Kafka's SASL password and client key, when used
    }


def write_connect_secrets(settings: Settings) -> Path:
    """Write the secrets file readable by its owner only; its path."""
    target = settings.connect_secrets_file
    target.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(target.parent, PRIVATE_DIR)  # its own folder: nobody else's to pass either
    write_private(target, "".join(
        f"{key}={_escape(value)}\n" for key, value in secret_values(settings).items()))
    return target


def _escape(value: str) -> str:
    """Java properties escaping for the characters that would change the meaning."""
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    for char in ("=", ":", "#", "!"):
        out = out.replace(char, "\\" + char)
    return out
