"""``acct2crm config show``: every setting in force, where it came from, secrets masked.

An operator who cannot see which file or variable a value came from cannot
trust it; this is the one place that says so. Secret values never appear: a
``SecretStr`` setting shows only whether it is set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from acct2crm.config_file import config_path
from acct2crm.settings import DERIVED_ENDPOINTS, LOCAL_PG_PASSWORD, Settings
from acct2crm.settings_origins import origins, unknown_env_names

MASK = "********"
# the local port an endpoint is derived from when it is not configured
_DERIVED_FROM = {
    "kafka_bootstrap": "kafka_port", "connect_url": "connect_port", "crm_url": "crm_port",
}


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Path):
        return str(value)
    return value


def collect(settings: Settings) -> dict[str, Any]:
    """The report as data: ``config_file``, ``settings`` (value, source, detail, secret),
    ``derived`` values, ``notes`` and ``unknown_env`` (variables naming no setting)."""
    where = origins(settings)
    rows: dict[str, dict[str, Any]] = {}
    for name in type(settings).model_fields:
        source, detail = where[name]
        if source == "default" and name in DERIVED_ENDPOINTS:
            detail = f"from {_DERIVED_FROM[name]}"
            if name == "kafka_bootstrap" and settings.kafka_bootstrap.endswith(
                f":{settings.kafka_sasl_ssl_port}"
            ):
                detail = "from kafka_sasl_ssl_port"  # the local SASL_SSL listener
        value = getattr(settings, name)
        rows[name] = {
            "value": _shown(value),
            "source": source,
            "detail": detail,
            "secret": isinstance(value, SecretStr),
        }
    path = config_path()
    password_source, password_detail = where["pg_password"]
    password_from = password_source + (f" {password_detail}" if password_detail else "")
    # the DSN itself is left to `status`: on the local stack it carries the password
    if settings.pg_is_local and settings.pg_password.get_secret_value() == LOCAL_PG_PASSWORD:
        dsn_note = (
            "postgres_dsn (acct2crm status) carries the local stack's password, from "
            f"{password_from}: it connects as printed"
        )
    elif settings.pg_is_local:
        dsn_note = (
            "postgres_dsn (acct2crm status --json) carries the password, from "
            f"{password_from}; the text form masks it, as it is not the local stack's own"
        )
    else:
        dsn_note = (
            f"postgres_dsn (acct2crm status) is printed without a password: {settings.pg_host} "
            f"is not this machine; the password is pg_password, from {password_from}"
        )
    return {
        "config_file": str(path) if path is not None else None,
        "settings": rows,
        "derived": {
            "status_url": settings.status_url,
            "change_topic": settings.change_topic,
            "scope_file_in_force": str(settings.effective_scope_file),
            "mapping_file_in_force": str(settings.effective_mapping_file),
            "tenants_file_in_force": str(settings.effective_tenants_file),
        },
        "notes": [dsn_note],
        "unknown_env": unknown_env_names(),
    }


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)


def as_text(report: dict[str, Any]) -> str:
    rows = report["settings"]
    width = max(len(name) for name in rows)
    values = {name: json.dumps(row["value"], default=str) for name, row in rows.items()}
    value_width = min(max(len(v) for v in values.values()), 48)
    lines = [f"config file: {report['config_file'] or 'none (environment and defaults only)'}", ""]
    for name, row in rows.items():
        source = row["source"] + (f" {row['detail']}" if row["detail"] else "")
        lines.append(f"{name:<{width}}  {values[name]:<{value_width}}  {source}")
    lines.append("")
    for name, value in report["derived"].items():
        # a scope or mapping file that is not there: its defaults are in force
        absent = name.endswith("_file_in_force") and not Path(value).exists()
        lines.append(f"{name:<{width}}  {value}" + ("  (absent: defaults)" if absent else ""))
    lines.extend(["", *report["notes"]])
    if report["unknown_env"]:
        lines.append(
            "ignored environment variables (no such setting): " + ", ".join(report["unknown_env"])
        )
    return "\n".join(lines)
