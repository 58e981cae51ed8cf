"""The project's topics, created up front with one partition each.

One partition keeps one tenant's changes in commit order end to end (docs/design.md,
"Order across rows"); creating them here, not on first use, means the partition count
is ours and not whatever auto-creation picks.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from acct2crm.errors import StackError
from acct2crm.kafka_io import admin_client
from acct2crm.kafka_security import topic_config
from acct2crm.settings import Settings


def project_topics(settings: Settings) -> list[str]:
    return [
        settings.change_topic,
        settings.commands_topic,
        settings.results_topic,
        settings.dlq_topic,
    ]


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the missing project topics; the names of those created."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [name for name in project_topics(settings) if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                name, num_partitions=1, replication_factor=settings.kafka_replication_factor,
                config=topic_config(settings),
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
