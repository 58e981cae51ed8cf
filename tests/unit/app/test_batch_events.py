"""The agents' batches: every event of a Faust stream handled exactly once.

Driven through a real Faust agent (its test context: no broker) with the
same ``take_events`` loop and per-partition step as the worker's agents.
Events trickle in over two partitions, so the batch window often closes
before the batch is full and new events arrive while a batch is handled:
the moment Faust's buffer task used to pick up the agent's event in place of
the one it had read (event_context.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust
import faust.streams
from faust.types import StreamT

from acct2crm.app.agents import each_partition
from acct2crm.model.message import Message

EVENTS = 400


async def _drive(app: faust.App, handled: list[tuple[int, int]],
                 partitions_written: list[tuple[int, set[int]]]) -> None:
    topic = app.topic("changes", value_serializer="raw")

    async def step(messages: Sequence[Message]) -> None:
        event = faust.streams.current_event()
        # the partition a table write would go to, beside the partitions of the messages
        partitions_written.append((-1 if event is None else event.message.partition,
                                   {m.partition or 0 for m in messages}))
        handled.extend((m.partition or 0, m.offset or 0) for m in messages)
        await asyncio.sleep(0.001)  # a step yields (the broker, the CRM)

    @app.agent(topic)
    async def route(stream: StreamT[Any]) -> None:
        async for events in stream.take_events(7, within=0.001):  # type: ignore[attr-defined]
            await each_partition(events, step)

    async with route.test_context() as agent:
        for i in range(EVENTS):
            await agent.put(b"v", key=b"k", partition=i % 2, wait=False)
            if i % 3 == 2:
                await asyncio.sleep(0.0015)
        for _ in range(500):
            if len(handled) >= EVENTS:
                break
            await asyncio.sleep(0.01)


async def test_every_event_of_a_two_partition_stream_is_handled_once() -> None:
    handled: list[tuple[int, int]] = []
    written: list[tuple[int, set[int]]] = []
    await _drive(faust.App("acct2crm-test-batches", store="memory://"), handled, written)
    assert len(handled) == EVENTS
    assert len(set(handled)) == EVENTS  # no event twice, none lost
    assert {p for p, _ in handled} == {0, 1}
    # each step's table writes go to the partition it handles
    assert {placed for placed, _ in written} == {0, 1}
    assert all(handles == {placed} for placed, handles in written), written
