"""A truncated and a garbage command on the real commands topic: both fail, the line goes on.

fastavro raises EOFError, IndexError, StopIteration... on a bad body; one that
escaped the command agent ended it, and the offset ledger then fed it the
same message forever, so no later change reached the CRM.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from acct2crm.app.pipeline import ChangeRouter, Outputs
from acct2crm.kafka_security import client_config
from acct2crm.model.message import Message
from acct2crm.records.avro import command_type
from acct2crm.scope_file import ScopeWatcher
from acct2crm.settings import Settings
from tests.support.changes import row
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration


def a_real_command() -> bytes:
    """A command exactly as the change agent writes it."""
    commands: list[bytes] = []

    async def keep(key: bytes | None, value: bytes) -> None:
        commands.append(value)

    async def drop(key: bytes | None, value: bytes) -> None:
        return None

    router = ChangeRouter(
        ScopeWatcher(Path("/nonexistent/scope.toml")), {}, Outputs("default", keep, drop, drop)
    )
    change = {"op": "c", "before": None, "after": row(999_999_001, code="POISON-TEMPLATE"),
              "source": {"lsn": 1, "txId": 1, "ts_ms": 1}}
    message = Message("changes", 0, 0, b'{"id": 999999001}', json.dumps(change).encode())
    asyncio.run(router.handle(message))
    return commands[0]


def produce(settings: Settings, values: list[bytes]) -> list[int]:
    """Write raw values to the commands topic; their offsets."""
    offsets: list[int] = []

    def delivered(err: object, msg: object) -> None:
        assert err is None, err
        offsets.append(msg.offset())  # type: ignore[attr-defined]

    producer = Producer(client_config(settings, acks="all"))
    for value in values:
        producer.produce(settings.commands_topic, value=value, key=b"poison",
                         on_delivery=delivered)
        producer.flush(30)
    return offsets


def mine(pipe: Pipeline, settings: Settings, offsets: list[int]) -> list[dict[str, Any]]:
    """The dead letters of these command offsets, once there is one for each."""
    deadline = time.monotonic() + 60
    wanted = set(offsets)
    while True:
        dead = [d for d in pipe.dead_letters(len(pipe._dead) + 1, timeout_s=1)
                if d["topic"] == settings.commands_topic and d["offset"] in wanted]
        if {d["offset"] for d in dead} == wanted or time.monotonic() > deadline:
            return dead


def test_poison_commands_fail_and_later_changes_still_apply(stack_settings: Settings) -> None:
    pipe = Pipeline.start(stack_settings)
    good = a_real_command()
    truncated = good[: len(good) // 2]
    garbage = command_type().header + b"\xff" * 40
    offsets = produce(stack_settings, [truncated, garbage])
    try:
        tag = unique_tag("P")
        row_id = pipe.insert(f"{tag}-1")
        [applied] = pipe.results([row_id], 1, timeout_s=120)
        failed = pipe.results_where(
            lambda r: r["action"] == "failed" and "undecodable command" in (r["reason"] or ""),
            2,
        )
        dead = mine(pipe, stack_settings, offsets)
    finally:
        pipe.close()
    assert applied["action"] == "created"
    assert len(pipe.crm_by_code(f"{tag}-1")) == 1
    # results carry no command offset; a failed run before may have left its own poison
    assert len(failed) >= 2
    assert sorted(d["offset"] for d in dead) == sorted(offsets)  # one dead letter each
    assert {bytes(d["value"]) for d in dead} == {truncated, garbage}
