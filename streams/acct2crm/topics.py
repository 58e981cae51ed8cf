"""The project's topics, created up front with their partition counts.

One tenant's changes stay in ONE partition end to end (docs/design.md, "Order across
rows" and "Many tenants"): the change topic and the commands topic have
``change_partitions`` partitions (co-partitioned: a command goes to its change's
partition), results and dead letters one. Creating them here, not on first use, means
the partition count is ours and not whatever auto-creation picks.

Retention is ours too: a queued change must outlive a CRM outage (R4), and the
broker's default (7 days) would delete it unseen. Every topic gets
``retention.ms`` from the settings (-1, kept forever, by default); a topic that
already exists with a shorter retention is corrected.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from acct2crm.errors import StackError
from acct2crm.kafka_io import admin_client
from acct2crm.kafka_security import topic_config as durability_config
from acct2crm.settings import Settings
from acct2crm.topic_partitions import (
    changelog_config,
    changelog_topics,
    grow_partitioned_topics,
    partitions_of,
)

RETENTION_MS = "retention.ms"


def project_topics(settings: Settings) -> list[str]:
    return [
        settings.change_topic,
        settings.commands_topic,
        settings.results_topic,
        settings.dlq_topic,
        *changelog_topics(),
    ]


def topic_config(settings: Settings) -> dict[str, str]:
    """Configs every project topic is created with."""
    return {**durability_config(settings), RETENTION_MS: str(settings.topic_retention_ms)}


def keeps_less(current_ms: int, wanted_ms: int) -> bool:
    """Whether retention ``current_ms`` deletes messages sooner than ``wanted_ms`` (-1: never)."""
    if current_ms < 0:
        return False
    return wanted_ms < 0 or current_ms < wanted_ms


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the missing project topics; the names of those created."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    grow_partitioned_topics(settings, admin, existing, timeout_s)
    missing = [name for name in project_topics(settings) if name not in existing]
    if not missing:
        return []
    config = topic_config(settings)
    futures = admin.create_topics(
        [
            NewTopic(
                name, num_partitions=partitions_of(settings, name),
                replication_factor=settings.kafka_replication_factor,
                config={**config, **changelog_config(name)},
            )
            for name in missing
        ],
        request_timeout=timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise StackError(f"cannot create topic {name}: {exc}") from exc
    return missing


def retention_of(settings: Settings, timeout_s: float = 15.0) -> dict[str, int]:
    """The broker's ``retention.ms`` of each existing project topic."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    resources = [
        ConfigResource(ResourceType.TOPIC, name)
        for name in project_topics(settings)
        if name in existing
    ]
    if not resources:
        return {}
    found: dict[str, int] = {}
    try:
        for resource, future in admin.describe_configs(
            resources, request_timeout=timeout_s
        ).items():
            entries = future.result(timeout=timeout_s)
            found[resource.name] = int(entries[RETENTION_MS].value)
    except (KafkaException, KeyError, ValueError) as exc:
        raise StackError(f"cannot read the topics' retention: {exc}") from exc
    return found


def ensure_retention(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Raise every project topic's retention to the configured one; what was corrected."""
    wanted = settings.topic_retention_ms
    short = {
        name: current
        for name, current in retention_of(settings, timeout_s).items()
        if keeps_less(current, wanted)
    }
    if not short:
        return []
    entry = ConfigEntry(
        RETENTION_MS, str(wanted), incremental_operation=AlterConfigOpType.SET
    )
    resources = [
        ConfigResource(ResourceType.TOPIC, name, incremental_configs=[entry]) for name in short
    ]
    admin = admin_client(settings)  # kept alive until every future has its answer
    try:
        for future in admin.incremental_alter_configs(resources).values():
            future.result(timeout=timeout_s)
    except KafkaException as exc:
        raise StackError(f"cannot set the topics' retention: {exc}") from exc
    return [f"{name} retention.ms {short[name]} -> {wanted}" for name in sorted(short)]
