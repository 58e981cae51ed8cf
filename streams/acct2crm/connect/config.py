"""Connector definitions: JSON templates with ``${acct2crm:NAME}`` placeholders.

Rendering is pure so it is testable without Connect; secrets are never
rendered in, they stay ``${file:...}`` references resolved inside Connect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from acct2crm.errors import ConfigError
from acct2crm.package_data import connector_templates
from acct2crm.settings import Settings
from acct2crm.tenants import Tenant, default_tenant, read_registry

PLACEHOLDER = re.compile(r"\$\{acct2crm:([a-z_]+)\}")


@dataclass(frozen=True)
class ConnectorDefinition:
    name: str
    config: dict[str, str]


def placeholder_values(settings: Settings, tenant: Tenant | None = None) -> dict[str, str]:
    """What each ``${acct2crm:NAME}`` stands for, for one tenant (the default one unless
    given); no secret is among them."""
    tenant = tenant or default_tenant(settings)
    return {
        "pg_host": settings.pg_host,
        "pg_port": str(settings.pg_port),
        "pg_database": tenant.database,
        "pg_replication_user": settings.pg_replication_user,
        "pg_publication": settings.pg_publication,
        "pg_slot": tenant.slot,
        "topic_prefix": settings.topic_prefix,
        "tenant": tenant.id,
        "tenant_topic_prefix": tenant.topic_prefix,
        "connector_name": tenant.connector,
        "change_topic": settings.change_topic,
        "change_topic_pattern": java_regex_literal(settings.change_topic),
        "change_partitions": str(settings.change_partitions),
        "secrets_file": str(settings.connect_secrets_file),
        "topic_retention_ms": str(settings.topic_retention_ms),
        "kafka_replication_factor": str(settings.kafka_replication_factor),
        "kafka_min_insync_replicas": str(settings.kafka_min_insync_replicas),
    }


def java_regex_literal(text: str) -> str:
    """``text`` as a Java regex matching only itself (topic names: letters, digits, ._-)."""
    return "".join("\\" + ch if not (ch.isalnum() or ch in "_-") else ch for ch in text)


def render(text: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder; an unknown one is a configuration error."""

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ConfigError(f"unknown placeholder ${{acct2crm:{key}}} in a connector config")
        return values[key]

    return PLACEHOLDER.sub(substitute, text)


def parse(document: object, source: str, values: Mapping[str, str]) -> ConnectorDefinition:
    """A definition from its JSON document, each config value rendered."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a JSON object with name and config")
    name, config = document.get("name"), document.get("config")
    if not isinstance(name, str) or not isinstance(config, dict):
        raise ConfigError(f"{source}: expected {{'name': str, 'config': {{...}}}}")
    rendered = {str(key): render(str(value), values) for key, value in config.items()}
    return ConnectorDefinition(name=render(name, values), config=rendered)


def load(
    settings: Settings,
    templates: list[Traversable] | None = None,
    tenants: list[Tenant] | None = None,
) -> list[ConnectorDefinition]:
    """Every connector template (the packaged ones by default), filled once per tenant
    (every tenant of the registry by default, the default tenant first)."""
    files = connector_templates() if templates is None else templates
    if not files:
        raise ConfigError("no connector template (*.json) found")
    chosen = list(read_registry(settings)) if tenants is None else tenants
    definitions = []
    for tenant in chosen:
        values = placeholder_values(settings, tenant)
        for path in files:
            try:
                document = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
            definitions.append(parse(document, str(path), values))
    return definitions
