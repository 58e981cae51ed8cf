"""The Faust app: topics, the CRM-code table, the two agents and the status page.

Every topic the app reads or writes has ONE partition per tenant: the rules
depend on codes, codes move between rows, so one tenant's changes must be
decided and applied in commit order (docs/design.md, "Order across rows").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import EventT, StreamT

from acct2crm.app.kafka_reader import RangeReader
from acct2crm.app.ledger import OffsetLedger
from acct2crm.app.pipeline import ChangeRouter, CommandApplier, Message, Outputs
from acct2crm.app.table_codecs import (
    CRM_CODE_ENTRY,
    HANDLED_OFFSET,
    POSITION,
    register_table_codecs,
)
from acct2crm.crm.client import CrmClient
from acct2crm.scope_file import ScopeWatcher
from acct2crm.settings import Settings
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from acct2crm.sink.pacing import RateLimiter, RetryPolicy, WaitState, call_with_retry

log = logging.getLogger(__name__)

GROUP_ID = "acct2crm"


def _message(event: EventT[Any]) -> Message:
    msg = event.message
    return Message(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key if isinstance(msg.key, bytes) or msg.key is None else bytes(msg.key),
        value=msg.value if isinstance(msg.value, bytes) or msg.value is None else bytes(msg.value),
    )


def _avro_table(app: faust.App, name: str, value_codec: str) -> Any:
    """A one-partition table with JSON keys and Avro values.

    Faust derives a table's serializers from its key and value types only,
    so the value codec is set on the table before its changelog or store
    (both made on first use) exist.
    """
    changelog = app.topic(
        f"{app.conf.id}-{name}-changelog",
        key_type=str,
        key_serializer="json",
        value_serializer=value_codec,
        partitions=1,
        compacting=True,
        deleting=False,
        acks=False,
        internal=True,
    )
    # use_partitioner: every topic has one partition, so the producer's choice is 0;
    # it also skips Faust's partition-count check, which reads the consumer's
    # metadata and fails while a just-created changelog still shows 0 partitions
    table = app.Table(
        name,
        default=None,
        partitions=1,
        key_type=str,
        changelog_topic=changelog,
        use_partitioner=True,
    )
    table.value_serializer = value_codec  # type: ignore[attr-defined]
    return table


def build_app(settings: Settings) -> faust.App:
    """A Faust app wired to the configured Kafka and CRM (one tenant)."""
    register_table_codecs()
    app = faust.App(
        GROUP_ID,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=settings.table_store,
        datadir=str(settings.home / "worker"),
        topic_partitions=1,
        topic_replication_factor=1,
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
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "partitions": 1}
    change_topic = app.topic(settings.change_topic, **raw)
    commands_topic = app.topic(settings.commands_topic, **raw)
    results_topic = app.topic(settings.results_topic, **raw)
    dlq_topic = app.topic(settings.dlq_topic, **raw)

    # (tenant, code key) -> what the CRM last said it holds under that code
    code_to_customer = _avro_table(app, "code_to_customer", CRM_CODE_ENTRY)
    # (tenant, accounting id) -> LSN of the last change of that row applied to the CRM
    row_to_position = _avro_table(app, "row_to_position", POSITION)

    # topic partition -> last offset an agent handled (see ledger.py for why)
    topic_offsets = _avro_table(app, "topic_offsets", HANDLED_OFFSET)
    reader = RangeReader(settings.kafka_bootstrap)
    ledger = OffsetLedger(topic_offsets, reader.read, reader.earliest)

    async def send_to(topic: faust.TopicT, key: bytes | None, value: bytes) -> None:
        await topic.send(key=key, value=value)

    outputs = Outputs(
        tenant=settings.tenant,
        send_command=lambda k, v: send_to(commands_topic, k, v),
        send_result=lambda k, v: send_to(results_topic, k, v),
        send_dead_letter=lambda k, v: send_to(dlq_topic, k, v),
    )
    wait_state = WaitState()
    scope = ScopeWatcher(settings.effective_scope_file)
    crm = CrmClient.connect(
        settings.crm_url,
        settings.crm_token.get_secret_value(),
        timeout_s=settings.crm_timeout_s,
        allow_insecure_http=settings.crm_allow_insecure_http,
    )
    cache = CodeCache(code_to_customer, settings.tenant)
    retry = RetryPolicy(settings.crm_retry_base_s, settings.crm_retry_cap_s)
    engine = SinkEngine(
        crm,
        cache,
        row_to_position,
        retry=retry,
        max_concurrency=settings.crm_max_concurrency,
        pace=RateLimiter(settings.crm_rate_limit_per_s),
        wait_state=wait_state,
    )
    started = time.time()

    async def seed() -> None:
        """First start: learn every code the CRM holds (paged list), then trust the table."""
        if cache.seeded:
            return

        async def load() -> int:
            n = 0
            async for record in crm.iter_all():
                cache.remember(record)
                n += 1
            return n

        n = await call_with_retry(load, retry, wait_state)
        cache.mark_seeded()
        log.info("CRM-code table seeded with %d CRM customers", n)

    router = ChangeRouter(scope, row_to_position, outputs)
    applier = CommandApplier(engine, outputs, seed)

    @app.agent(change_topic, name="route_changes")
    async def route_changes(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            for message in await ledger.admit_or_pass([_message(event)]):
                await router.handle(message)
                ledger.handled_or_log([message])

    @app.agent(commands_topic, name="apply_commands")
    async def apply_commands(stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.sink_batch_size, within=settings.sink_batch_window_s
        ):
            await _apply(stream, events)

    async def _apply(stream: StreamT[bytes], events: Sequence[EventT[Any]]) -> None:
        # take_events fills its buffer in another task; table writes need the
        # current event of this one (all events share the single partition)
        stream._set_current_event(events[-1])  # type: ignore[attr-defined]
        messages = await ledger.admit_or_pass([_message(e) for e in events])
        await applier.handle_batch(messages)
        ledger.handled_or_log(messages)


    @app.page("/status")
    async def status_page(web: Any, request: Any) -> Any:
        return web.json(
            {
                "state": "waiting_for_crm" if wait_state.reason else "running",
                "waiting_reason": wait_state.reason,
                "waiting_kind": wait_state.kind,  # "configuration": the operator must act
                "waiting_since": wait_state.since,
                "crm_retries": wait_state.retries,
                "scope": scope.current().describe(),
                "scope_error": scope.error,
                "counts_since_start": dict(outputs.counts),
                "started_at": started,
                "seeded": cache.seeded,
            }
        )

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker until SIGTERM/SIGINT."""
    # Faust's data folder lives under home, which only `acct2crm up` created before
    (settings.home / "worker").mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
