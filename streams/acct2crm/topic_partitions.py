"""Partition counts of the partitioned topics, and the upgrade of a kept stack.

A stack made before tenants has a one-partition change topic and commands topic.
Kafka can add partitions but never remove them, and adding them moves where
messages go: a tenant's old changes stay in partition 0 while its new ones go
to the partition ``PartitionRouting`` picks, so a worker could read a new
change before an old one. Partitions are therefore added only when nothing is
left to read (the worker group's committed offset is at the end of every
partition) and no connector is writing with the old routing (Connect is not
running, which is the case during ``acct2crm up`` after ``down``); otherwise
the upgrade stops with what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions  # type: ignore[attr-defined]

from acct2crm.errors import ConfigError, ConnectError, StackError
from acct2crm.kafka_io import consumer as kafka_consumer
from acct2crm.settings import Settings
from acct2crm.tenants import read_registry

WORKER_GROUP = "acct2crm"  # the Faust app's id, its consumer group (app/topology.py)
INT_MAX = 0x7FFFFFFF
TABLES = ("code_to_customer", "row_to_position", "topic_offsets")  # app/topology.py
COMPACTED = {"cleanup.policy": "compact"}


def changelog_topics() -> list[str]:
    return [f"{WORKER_GROUP}-{name}-changelog" for name in TABLES]


def partitioned_topics(settings: Settings) -> list[str]:
    """Topics with one partition per tenant slot: changes, and co-partitioned with them
    the commands and the worker's table changelogs."""
    return [settings.change_topic, settings.commands_topic, *changelog_topics()]


def changelog_config(topic: str) -> dict[str, str]:
    return COMPACTED if topic in changelog_topics() else {}


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (UTF-16 code units, 32-bit signed overflow)."""
    value = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        value = (31 * value + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def partition_of(database: str, partitions: int) -> int:
    """The change-topic partition of a database, as ``PartitionRouting`` computes it
    (Java hash of ``source.db``, sign bit cleared, modulo the partition count)."""
    hashed = java_string_hash(database) & INT_MAX
    if hashed == INT_MAX:
        hashed = 0
    return hashed % partitions


def tenant_partition(settings: Settings, database: str) -> int:
    """The partition of the change and commands topics holding ``database``'s changes."""
    return partition_of(database, settings.change_partitions)


def commands_partitions(settings: Settings, tenant_ids: Iterable[str]) -> dict[str, int]:
    """Where commands of these tenants sent from outside the worker (backfill, re-drive)
    must go: each tenant's partition, behind its other commands and handled by its lane
    and table partitions; ``ConfigError`` for an unknown tenant (before anything is sent)."""
    registry = read_registry(settings)
    found: dict[str, int] = {}
    for tenant_id in tenant_ids:
        tenant = registry.get(tenant_id)
        if tenant is None:
            raise ConfigError(f"tenant {tenant_id!r} is not in the tenants file "
                              f"{settings.effective_tenants_file}")
        found[tenant_id] = tenant_partition(settings, tenant.database)
    return found


def commands_partition(settings: Settings, tenant_id: str) -> int:
    return commands_partitions(settings, [tenant_id])[tenant_id]


def partitions_of(settings: Settings, topic: str) -> int:
    return settings.change_partitions if topic in partitioned_topics(settings) else 1


def _current_partitions(admin: AdminClient, topic: str, timeout_s: float) -> int:
    metadata = admin.list_topics(topic=topic, timeout=timeout_s)
    found = metadata.topics.get(topic)
    return len(found.partitions) if found is not None and found.partitions else 0


def undrained(settings: Settings, topic: str, partitions: int, timeout_s: float) -> list[int]:
    """Partitions of ``topic`` where the worker group has not committed the end offset."""
    consumer = kafka_consumer(settings, WORKER_GROUP)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=timeout_s)}
        left = []
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            done = committed.get(p, -1)
            if high > low and (done < 0 or done < high):
                left.append(p)
        return left
    except KafkaException as exc:
        raise StackError(f"cannot read the worker group's offsets on {topic}: {exc}") from exc
    finally:
        consumer.close()


def _connect_is_running(settings: Settings) -> bool:
    from acct2crm.connect.client import ConnectClient  # noqa: PLC0415 (only on upgrade)

    try:
        with ConnectClient(settings.connect_url) as client:
            client.status("acct2crm-accounting-customer")
        return True
    except ConnectError:
        return False


def grow_partitioned_topics(
    settings: Settings, admin: AdminClient, existing: set[str], timeout_s: float
) -> list[str]:
    """Add partitions up to ``change_partitions`` where an existing topic has fewer, when
    that keeps order (see the module's docstring); the names grown."""
    wanted = settings.change_partitions
    short = {}
    for topic in partitioned_topics(settings):
        if topic in existing:
            have = _current_partitions(admin, topic, timeout_s)
            if 0 < have < wanted:
                short[topic] = have
    if not short:
        return []
    for topic, have in short.items():
        if topic in changelog_topics():
            continue  # state, not work: the partition that owns a key reads it back
        left = undrained(settings, topic, have, timeout_s)
        if left:
            raise StackError(
                f"topic {topic} has {have} partition(s), change_partitions is {wanted}: "
                f"partitions {left} still hold changes the worker has not handled; let it "
                "catch up (lag 0), run 'acct2crm down', then 'up' again (or keep "
                f"change_partitions={have})"
            )
    if _connect_is_running(settings):
        raise StackError(
            f"topics {sorted(short)} need {wanted} partitions while Kafka Connect runs with "
            "the old routing: run 'acct2crm down', then 'up' again"
        )
    futures = admin.create_partitions(
        [NewPartitions(topic, wanted) for topic in short], request_timeout=timeout_s
    )
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise StackError(f"cannot add partitions to {topic}: {exc}") from exc
    return sorted(short)
