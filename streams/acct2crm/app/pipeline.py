"""What the two agents do with each message, apart from Faust itself.

``ChangeRouter`` decodes a Debezium change and classifies it: a final outcome
becomes a result at once, an in-scope insert/update becomes a command.
``CommandApplier`` applies a batch of commands through the sink engine and
turns every outcome into a result (and a dead letter when it failed).
Both catch everything: an exception must never escape a Faust agent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from acct2crm import metrics
from acct2crm.app.activity import ACTIVITY
from acct2crm.app.co_partition import CHANGE_PARTITION
from acct2crm.app.command_read import command_of
from acct2crm.debezium import TenantOf, decode_change
from acct2crm.errors import DecodeError
from acct2crm.log_format import change_logged
from acct2crm.mapping_file import MappingWatcher
from acct2crm.model.message import Message
from acct2crm.records.avro import command_type, dead_letter_type, result_type
from acct2crm.records.convert import (
    command_record,
    dead_letter_record,
    intent_from_command,
    result_record,
)
from acct2crm.rules.change import Action, Position
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.mapping import DEFAULT_MAPPING
from acct2crm.scope_file import ScopeWatcher
from acct2crm.sink.engine import Applied, SinkEngine
from acct2crm.sink.positions import PositionBook

log = logging.getLogger(__name__)

Send = Callable[[bytes | None, bytes], Awaitable[Any]]


class BatchApplier(Protocol):
    """Anything that applies a batch like ``SinkEngine`` (e.g. one engine per tenant)."""

    async def apply_batch(self, intents: Sequence[SyncIntent]) -> list[Applied]: ...


@dataclass
class Outputs:
    """Where results and dead letters go, counting results per action as they leave."""

    tenant: str
    send_command: Send
    send_result: Send
    send_dead_letter: Send
    counts: MutableMapping[str, int] = field(default_factory=dict)

    async def result(
        self,
        *,
        accounting_id: int | None,
        code: str | None,
        op: str,
        action: Action,
        reason: str,
        crm_id: int | None = None,
        position: Position | None = None,
        tenant: str | None = None,
    ) -> None:
        record = result_record(
            tenant=tenant or self.tenant,
            accounting_id=accounting_id,
            code=code,
            op=op,
            action=action,
            reason=reason,
            crm_id=crm_id,
            position=position,
        )
        self.counts[action.value] = self.counts.get(action.value, 0) + 1
        metrics.result(record)
        ACTIVITY.record(record)
        key = (code or str(accounting_id or "")).encode()
        await self.send_result(key or None, result_type().encode(record))

    async def dead_letter(
        self, message: Message, error: str, reason: str, change_offset: int | None,
        tenant: str | None = None,
    ) -> None:
        record = dead_letter_record(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            error=error,
            reason=reason,
            change_offset=change_offset,
        )
        metrics.dead_letter(tenant or self.tenant)
        await self.send_dead_letter(message.key, dead_letter_type().encode(record))

    async def unreadable(
        self,
        message: Message,
        exc: BaseException,
        reason: str,
        change_offset: int | None,
        intent: SyncIntent | None = None,
    ) -> None:
        """A message we could not handle: a failed result and its dead letter, never a raise."""
        try:
            await self.result(
                accounting_id=intent.accounting_id if intent else None,
                code=intent.code if intent else None,
                op=intent.op.value if intent else "?",
                action=Action.FAILED,
                reason=reason,
                position=intent.position if intent else None,
                tenant=intent.tenant if intent else None,
            )
            await self.dead_letter(message, type(exc).__name__, reason, change_offset,
                                   intent.tenant if intent else None)
        except Exception:
            log.exception("could not record the failure of %s offset %s", message.topic,
                          message.offset)


class ChangeRouter:
    def __init__(
        self,
        scope: ScopeWatcher,
        positions: MutableMapping[str, Any],
        outputs: Outputs,
        *,
        mapping: MappingWatcher | None = None,
        tenant_of: TenantOf | None = None,
        scope_of: Callable[[str], ScopeWatcher] | None = None,
        before_command: Callable[[SyncIntent], Awaitable[None]] | None = None,
    ) -> None:
        self._scope = scope
        self._mapping = mapping
        self._before_command = before_command  # dependent commands in order: command_order.py
        self._positions = PositionBook(positions)
        self._out = outputs
        # many tenants: the change's tenant from its database, each with its own scope
        self._tenant_of = tenant_of
        self._scope_of = scope_of

    async def handle(self, message: Message) -> None:
        noted = CHANGE_PARTITION.set(message.partition)  # its command goes to this partition
        try:
            await self._handle(message)
        except Exception as exc:  # the agent must go on; the change is kept as a dead letter
            log.exception("unexpected error routing change at offset %s", message.offset)
            await self._out.unreadable(message, exc, f"internal error: {exc}", message.offset)
        finally:
            CHANGE_PARTITION.reset(noted)

    async def _handle(self, message: Message) -> None:
        try:
            change = decode_change(
                message.key, message.value, tenant=self._out.tenant, offset=message.offset,
                tenant_of=self._tenant_of,
            )
        except DecodeError as exc:
            metrics.change_consumed(self._out.tenant)  # whose, it cannot say
            await self._out.unreadable(
                message, exc, f"undecodable change: {exc}", message.offset
            )
            return
        if change is None:
            metrics.change_consumed(self._out.tenant)
            return  # tombstone, heartbeat or schema event: not a change
        tenant = change.tenant
        metrics.change_consumed(tenant)
        applied = None
        if change.accounting_id is not None:
            applied = self._positions.applied(tenant, change.accounting_id)
        mapping = self._mapping.current() if self._mapping is not None else DEFAULT_MAPPING
        scope = self._scope_of(tenant) if self._scope_of is not None else self._scope
        decided = classify(change, scope.current(), applied, mapping=mapping)
        change_logged(tenant, message.offset, decided.code, "to_crm" if isinstance(
            decided, SyncIntent) else decided.action.value)
        if isinstance(decided, SyncIntent):
            record = command_record(decided, message.offset)
            if self._before_command is not None:
                await self._before_command(decided)
            await self._out.send_command(
                str(decided.accounting_id).encode(), command_type().encode(record)
            )
            return
        await self._out.result(
            accounting_id=change.accounting_id,
            code=decided.code,
            op=change.op.value,
            action=decided.action,
            reason=decided.reason,
            position=change.position,
            tenant=tenant,
        )
        if decided.action is Action.FAILED:
            await self._out.dead_letter(message, "BadRowError", decided.reason, message.offset,
                                        tenant)


class CommandApplier:
    def __init__(
        self,
        engine: SinkEngine | BatchApplier,
        outputs: Outputs,
        seed: Callable[[], Awaitable[None]],
        gate: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._out = outputs
        self._seed = seed
        self._gate = gate  # returns once the tenant is not paused (pause.py)

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        if self._gate is not None:
            await self._gate(self._out.tenant)  # a paused tenant's batch waits, unread
        intents: list[SyncIntent] = []
        origin: list[tuple[Message, int | None]] = []
        for message in messages:
            try:
                record = command_of(message)  # read once on the way to its lane
                intents.append(intent_from_command(record))
                origin.append((message, record.get("change_offset")))
            except Exception as exc:  # any unreadable command is a failed result, never a raise
                await self._out.unreadable(message, exc, f"undecodable command: {exc}", None)
        if not intents:
            return
        try:
            await self._seed()
            applied = await self._engine.apply_batch(intents)
        except Exception as exc:  # never escape the agent: keep every command as a dead letter
            log.exception("unexpected error applying a batch of %d commands", len(intents))
            for intent, (message, change_offset) in zip(intents, origin, strict=True):
                await self._out.unreadable(
                    message, exc, f"internal error: {exc}", change_offset, intent
                )
            return
        for outcome, (message, change_offset) in zip(applied, origin, strict=True):
            change_logged(outcome.intent.tenant, change_offset, outcome.intent.code,
                          outcome.action.value)
            await self._report(outcome)
            if outcome.action is Action.FAILED:
                await self._out.dead_letter(
                    message, outcome.error or "CrmRejected", outcome.reason, change_offset,
                    outcome.intent.tenant,
                )

    async def _report(self, outcome: Applied) -> None:
        intent = outcome.intent
        await self._out.result(
            accounting_id=intent.accounting_id,
            code=intent.code,
            op=intent.op.value,
            action=outcome.action,
            reason=outcome.reason,
            crm_id=outcome.crm_id,
            position=intent.position,
            tenant=intent.tenant,
        )
