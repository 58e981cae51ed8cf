"""The two agents: route changes into commands, apply commands to the CRM.

The work of each is a step (steps.py) that never raises; here they are only
bound to their topics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.types import EventT, StreamT

from acct2crm.app.catch_up import (
    CatchUp,
    PartitionGate,
    end_offset_of,
    owned_partitions,
    register_catch_up,
)
from acct2crm.app.command_lanes import (
    PartitionEvents,
    build_lanes,
    register_lane_stops,
    tenant_appliers,
    tenant_wait_reason,
)
from acct2crm.app.consumer_gaps import CommitHoles, register_commit_holes
from acct2crm.app.event_context import write_as
from acct2crm.app.steps import ChangeStep, CommandStep
from acct2crm.app.topology import Topology
from acct2crm.app.wiring import Wiring
from acct2crm.model.message import Message
from acct2crm.settings import Settings


def as_message(event: EventT[Any]) -> Message:
    msg = event.message
    return Message(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key if isinstance(msg.key, bytes) or msg.key is None else bytes(msg.key),
        value=msg.value if isinstance(msg.value, bytes) or msg.value is None else bytes(msg.value),
    )


def by_partition(events: Sequence[EventT[Any]]) -> list[list[EventT[Any]]]:
    """The batch split by partition, each part in offset order (tenants live in partitions)."""
    parts: dict[int, list[EventT[Any]]] = {}
    for event in events:
        parts.setdefault(event.message.partition, []).append(event)
    return list(parts.values())


async def each_partition(
    events: Sequence[EventT[Any]], step: Callable[[list[Message]], Awaitable[None]]
) -> None:
    """One step per partition of a batch, in offset order, its table writes going to that
    partition (never through the stream's own current event: event_context.py)."""
    for part in by_partition(events):
        write_as(part[-1])
        await step([as_message(e) for e in part])


def register_agents(settings: Settings, topology: Topology, wiring: Wiring) -> None:
    app = topology.app
    gate = PartitionGate()  # the agents and the idle read-back never handle a partition at once
    change_step = ChangeStep(wiring.ledger, wiring.router, wiring.deliveries[0], gate)
    lane_events = PartitionEvents()  # each tenant lane writes tables as its partition's event
    wiring.lanes = build_lanes(
        wiring.ledger, tenant_appliers(wiring.applier, wiring.deliveries[1]), lane_events,
        batch_size=settings.sink_batch_size, max_held=settings.lane_max_held,
        gate=wiring.pause.wait, paused=lambda tenant: tenant in wiring.pause.paused(),
        reason=lambda tenant: tenant_wait_reason(wiring.sinks, tenant),
    )
    register_lane_stops(app, wiring.lanes, lane_events)
    command_step = CommandStep(wiring.ledger, wiring.lanes, gate)
    topics = (settings.change_topic, settings.commands_topic)
    wiring.catch_up = CatchUp(
        wiring.ledger, gate, dict(zip(topics, (change_step, command_step), strict=True)),
        end_offset_of(app), lambda: owned_partitions(app, topics),
        chunks={settings.commands_topic: settings.sink_batch_size,
                settings.change_topic: settings.change_batch_size},
    )
    register_catch_up(app, wiring.catch_up, settings.tenant)
    register_commit_holes(app, CommitHoles(app, wiring.ledger.done_through, topics))

    @app.agent(topology.change_topic, name="route_changes")
    async def route_changes(stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.change_batch_size, within=settings.change_batch_window_s
        ):
            await each_partition(events, change_step)

    @app.agent(topology.commands_topic, name="apply_commands")
    async def apply_commands(stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.sink_batch_size, within=settings.sink_batch_window_s
        ):
            lane_events.remember(events)  # a lane writes tables as its partition's event
            await each_partition(events, command_step)
