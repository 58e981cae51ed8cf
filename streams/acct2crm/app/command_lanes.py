"""Binding tenant lanes (lanes.py) to the worker: appliers, Faust's events, rebalances.

Kept apart from agents.py and wiring.py so the multi-tenant port only has to
swap ``applier_for`` (one sink per tenant) and read ``lanes.status()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from faust.types import EventT

from acct2crm.app.command_read import command_of, read_command
from acct2crm.app.delivery import Delivery
from acct2crm.app.event_context import write_as
from acct2crm.app.lanes import Apply, Gate, Paused, Reason, TenantLanes
from acct2crm.app.ledger import OffsetLedger
from acct2crm.app.offset_window import TP, OffsetWindow
from acct2crm.app.pipeline import CommandApplier
from acct2crm.model.message import Message

if TYPE_CHECKING:
    from acct2crm.app.tenant_sinks import TenantSinks

log = logging.getLogger(__name__)

UNREADABLE = ""  # the lane of commands whose tenant cannot be read (they become dead letters)


def tenant_of_command(message: Message) -> str:
    """The tenant a command belongs to, read from the record itself."""
    try:
        return str(command_of(message)["tenant"])
    except Exception:
        return UNREADABLE


class PartitionEvents:
    """The latest Faust event per partition, to make a lane's table writes go there.

    Faust sends a table write to the changelog partition of the *current
    event*, a context variable of the task that handles it. A lane is its own
    task, so before applying it sets that variable to an event of its own
    partition (kept here: Faust holds the event only by a weak reference).
    """

    def __init__(self) -> None:
        self._latest: dict[TP, EventT[Any]] = {}

    def remember(self, events: Sequence[EventT[Any]]) -> None:
        for event in events:
            self._latest[(event.message.topic, event.message.partition)] = event

    def enter(self, tp: TP) -> None:
        event = self._latest.get(tp)
        if event is not None:
            write_as(event)

    def forget(self, tps: Sequence[TP]) -> None:
        for tp in tps:
            self._latest.pop(tp, None)


def one_applier(applier: CommandApplier, delivery: Delivery) -> Callable[[str], Apply]:
    """Single-tenant install: every lane applies through the one engine."""

    async def apply(messages: Sequence[Message]) -> None:
        await applier.handle_batch(messages)
        await delivery.settle()

    return lambda tenant: apply


def tenant_appliers(applier: CommandApplier, delivery: Delivery) -> Callable[[str], Apply]:
    """Each tenant's lane applies through that tenant's sink alone.

    ``applier``'s engine is the worker's ``TenantSinks``: a lane's batch holds
    one tenant's commands only, so it runs through ``apply_tenant`` of that
    tenant (its CRM account, seeding, wait state) and nobody else's. That never
    raises: a tenant missing from the tenants file gets failed results and dead
    letters, so its lane goes on instead of retrying forever; an unreadable
    command is a dead letter too (``CommandApplier``). Then the lane waits for
    the broker to hold its results before its offsets count as done.
    """
    made: dict[str, Apply] = {}

    def applier_for(tenant: str) -> Apply:
        apply = made.get(tenant)
        if apply is None:
            async def apply(messages: Sequence[Message]) -> None:
                await applier.handle_batch(messages)
                await delivery.settle()

            made[tenant] = apply
        return apply

    return applier_for


def tenant_wait_reason(sinks: TenantSinks | None, tenant: str) -> str | None:
    """Why this tenant's sink waits for its CRM now, if it does (its own wait state)."""
    sink = sinks.sinks.get(tenant) if sinks is not None else None
    return sink.wait_state.reason if sink is not None else None


def build_lanes(
    ledger: OffsetLedger,
    applier_for: Callable[[str], Apply],
    events: PartitionEvents,
    *,
    batch_size: int,
    max_held: int,
    gate: Gate | None = None,
    paused: Paused = lambda tenant: False,
    reason: Reason = lambda tenant: None,
) -> TenantLanes:
    """Lanes sharing the ledger's window, so the ledger knows what is out with them."""
    window = ledger.window if ledger.window is not None else OffsetWindow()
    ledger.window = window

    async def read_back(topic: str, partition: int, start: int, end: int) -> list[Message]:
        return [read_command(m) for m in await ledger.read_back(topic, partition, start, end)]

    return TenantLanes(
        applier_for, tenant_of_command, window, ledger.record, read_back,
        batch_size=batch_size, max_held=max_held, enter=events.enter, gate=gate,
        paused=paused, reason=reason,
        done_mark=ledger.tenant_done, record_mark=ledger.record_tenant,
    )


def register_lane_stops(app: Any, lanes: TenantLanes, events: PartitionEvents) -> None:
    """Revoked partitions' lanes stop before the rebalance goes on; all stop at shutdown."""

    @app.on_partitions_assigned.connect  # type: ignore[untyped-decorator]
    async def reopen_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        lanes.reopen([(tp.topic, tp.partition) for tp in assigned])

    @app.on_partitions_revoked.connect  # type: ignore[untyped-decorator]
    async def stop_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        tps = [(tp.topic, tp.partition) for tp in revoked]
        try:
            await lanes.stop(tps)
        except Exception:
            log.exception("stopping the lanes of revoked partitions failed")
        events.forget(tps)

    @app.on_before_shutdown.connect  # type: ignore[untyped-decorator]
    async def stop_all(sender: Any, **kwargs: Any) -> None:
        try:
            await lanes.stop_all()
        except Exception:
            log.exception("stopping the lanes failed")
