"""The Faust app itself, its topics and its tables.

Every topic the app reads or writes has ONE partition per tenant: the rules
depend on codes, codes move between rows, so one tenant's changes must be
decided and applied in commit order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from acct2crm.app.faust_app import WorkerApp
from acct2crm.app.table_codecs import (
    CRM_CODE_ENTRY,
    HANDLED_OFFSET,
    POSITION,
    register_table_codecs,
)
from acct2crm.app.table_partitions import TablePartitions, partition_by_key, place_store_writes
from acct2crm.app.table_reads import read_once
from acct2crm.kafka_security import faust_credentials, topic_config
from acct2crm.settings import Settings

GROUP_ID = "acct2crm"


@dataclass(frozen=True)
class Topology:
    """The app and everything it declares on Kafka."""

    app: faust.App
    change_topic: faust.TopicT
    commands_topic: faust.TopicT
    results_topic: faust.TopicT
    dlq_topic: faust.TopicT
    # (tenant, code key) -> what the CRM last said it holds under that code
    code_to_customer: Any
    # (tenant, accounting id) -> LSN of the last change of that row applied to the CRM
    row_to_position: Any
    # topic partition -> last offset an agent handled (see ledger.py for why)
    topic_offsets: Any


def make_app(settings: Settings) -> faust.App:
    return WorkerApp(
        GROUP_ID,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=settings.table_store,
        table_standby_replicas=settings.table_standby_replicas,
        datadir=str(settings.worker_data_dir or settings.home / "worker"),
        # many tenants: partitioned topics and tables have change_partitions
        topic_partitions=settings.change_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        broker_credentials=faust_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_host="127.0.0.1",
        web_bind=settings.worker_bind,
        web_port=settings.worker_port,
        web_in_thread=False,
        autodiscover=False,
        broker_commit_every=100,
        # a killed worker's partitions go to its successor after this long
        broker_session_timeout=15.0,
        broker_heartbeat_interval=3.0,
        broker_commit_interval=1.0,
        producer_acks=-1,
        # on a rebalance Faust would wait for every event handed out to be acked; one
        # never acked (seen under SIGKILL tests) held the group for good. Nothing here
        # needs that wait: the ledger and the row positions make a re-read harmless,
        # and each tenant lane stops itself when its partition is revoked (lanes.py)
        stream_wait_empty=False,
        # records sent together share a request (a per-record request cost the
        # change agent a socket write each); its steps wait once per batch anyway
        producer_linger=0.005,
        # no built-in pages (tables by key, router, stats): see faust_app.py
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )


def avro_table(
    app: faust.App, name: str, value_codec: str, topic_config: dict[str, str] | None = None,
    partitions: int = 1,
) -> Any:
    """A table with JSON keys and Avro values, co-partitioned with the change topic.

    Faust derives a table's serializers from its key and value types only,
    so the value codec is set on the table before its changelog or store
    (both made on first use) exist.
    """
    changelog = app.topic(
        f"{app.conf.id}-{name}-changelog",
        key_type=str,
        key_serializer="json",
        value_serializer=value_codec,
        partitions=partitions,
        compacting=True,
        deleting=False,
        acks=False,
        internal=True,
        config=topic_config,
    )
    # one partition: the producer's choice is 0 (use_partitioner also skips Faust's
    # partition-count check, which fails while a just-created changelog shows 0
    # partitions). Many partitions: a write goes to its event's partition, the one
    # its tenant's changes and commands are in; the changelogs are created before the
    # worker starts (topics.py), so the check finds them
    table = app.Table(
        name,
        default=None,
        partitions=partitions,
        key_type=str,
        changelog_topic=changelog,
        use_partitioner=partitions == 1,
    )
    table.value_serializer = value_codec  # type: ignore[attr-defined]
    placed = None
    if partitions > 1:  # writes outside a stream go to their key's partition
        placed = TablePartitions(ledger=name == "topic_offsets")
        partition_by_key(table, placed)
    place_store_writes(table, placed)  # on rocksdb:// too (table_partitions.py)
    read_once(table)
    return table


def build_topology(settings: Settings) -> Topology:
    register_table_codecs()
    app = make_app(settings)
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "partitions": 1}
    changelogs = topic_config(settings)  # Faust creates these with the app's replication factor
    n = settings.change_partitions  # the commands topic and tables are co-partitioned with it
    split: dict[str, Any] = {**raw, "partitions": n}
    return Topology(
        app=app,
        change_topic=app.topic(settings.change_topic, **split),
        commands_topic=app.topic(settings.commands_topic, **split),
        results_topic=app.topic(settings.results_topic, **raw),
        dlq_topic=app.topic(settings.dlq_topic, **raw),
        code_to_customer=avro_table(app, "code_to_customer", CRM_CODE_ENTRY, changelogs, n),
        row_to_position=avro_table(app, "row_to_position", POSITION, changelogs, n),
        topic_offsets=avro_table(app, "topic_offsets", HANDLED_OFFSET, changelogs, n),
    )
