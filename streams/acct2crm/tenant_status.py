"""``status``'s view of tenants and workers: per tenant its lag, counts and waiting state.

A tenant's changes are in the partition Debezium's ``PartitionRouting`` picks
from its database name (Java ``String.hashCode``, sign bit cleared, modulo
the partition count), so its lag is that partition's (change and commands
topics, against the worker's offset ledger): shared with any tenant that
hashes to the same partition. Counts come from the result index (result_index.py),
which counts the results topic's records per tenant; the waiting state from
every worker's status page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from confluent_kafka import KafkaException, TopicPartition

from acct2crm.errors import Acct2CrmError
from acct2crm.kafka_io import consumer
from acct2crm.pause import pause_path, read_paused
from acct2crm.progress import handled_offsets, tenant_counts
from acct2crm.settings import Settings
from acct2crm.source_watch import tenant_report
from acct2crm.tenants import TenantRegistry, read_registry
from acct2crm.topic_partitions import partition_of

CRM_WAITS = ("waiting_for_crm", "retrying")  # a tenant's lane states that mean "waits for its CRM"


def partition_lags(settings: Settings, timeout_s: float = 5.0) -> dict[int, int]:
    """Messages per partition (change + commands topics) the worker has not handled yet."""
    ledger = handled_offsets(settings)
    c = consumer(settings, "acct2crm-status")
    try:
        lags: dict[int, int] = {}
        for p in range(settings.change_partitions):
            total = 0
            for topic in (settings.change_topic, settings.commands_topic):
                low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                last = ledger.get(f"{topic}\x1f{p}")
                done = last + 1 if last is not None else low
                total += max(0, high - done)
            lags[p] = total
        return lags
    finally:
        c.close()


def worker_bodies(urls: Sequence[str]) -> list[dict[str, Any]]:
    bodies = []
    for url in urls:
        try:
            answer = httpx.get(url, timeout=2.0)
            body = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if isinstance(body, dict):
            bodies.append(body)
    return bodies


def tenants_view(
    settings: Settings, status_urls: Sequence[str], registry: TenantRegistry | None = None,
    *, kafka: bool = True, bodies: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``status --json``'s ``tenants``: ``{"<ID>": {"lag", "counts", "sync"}}``, and for
    each tenant but the default its ``source`` (source_watch.tenant_report). ``kafka=False``:
    Kafka does not answer; lags are -1 and counts as far as the result index has them."""
    try:
        registry = registry or read_registry(settings)
    except Acct2CrmError:
        return {}
    try:
        lags: dict[int, int] | None = partition_lags(settings) if kafka else None
        # the result index: no scan of the results topic
        counts = tenant_counts(settings, kafka=kafka)
    except (KafkaException, Acct2CrmError):
        lags, counts = None, {}
    bodies = worker_bodies(status_urls) if bodies is None else bodies  # asked once by status
    try:
        paused = read_paused(pause_path(settings))
    except Acct2CrmError:
        paused = {}
    view = {}
    for tenant in registry:
        sync: dict[str, Any] = {"state": "running" if bodies else "unreachable",
                                "waiting_reason": None}
        for body in bodies:
            seen = (body.get("tenants") or {}).get(tenant.id)
            if not isinstance(seen, dict):
                continue
            if seen.get("state") in CRM_WAITS:  # its lane waits, alone
                sync = {"state": seen["state"], "waiting_reason": seen.get("waiting_reason")}
            if seen.get("queued"):  # commands held in its lane, and the oldest one's age
                sync |= {"queued": seen["queued"], "oldest_waiting_s": seen.get("oldest_waiting_s")}
        if tenant.id in paused:  # its changes wait in Kafka until `acct2crm resume`
            sync = {"state": "paused", "waiting_reason": None}
        partition = partition_of(tenant.database, settings.change_partitions)
        view[tenant.id] = {
            "lag": lags.get(partition, 0) if lags is not None else -1,
            "counts": dict(counts.get(tenant.id, {})),
            "sync": sync,
        }
        if not tenant.is_default:  # the default tenant's is status's top-level `source`
            view[tenant.id]["source"] = tenant_report(settings, tenant)
    return view
