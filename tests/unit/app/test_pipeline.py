"""The agents' bodies without Faust: every message ends as a result, nothing raises."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from acct2crm import metrics
from acct2crm.app.command_lanes import PartitionEvents, build_lanes, one_applier
from acct2crm.app.delivery import Delivery
from acct2crm.app.ledger import OffsetLedger, RangeRead
from acct2crm.app.pipeline import ChangeRouter, CommandApplier, Outputs
from acct2crm.app.steps import CommandStep
from acct2crm.model.message import Message
from acct2crm.records.avro import command_type, dead_letter_type, result_type
from acct2crm.scope_file import ScopeWatcher
from acct2crm.sink.code_cache import CodeCache
from acct2crm.sink.engine import SinkEngine
from tests.support.changes import row
from tests.support.memory_crm import MemoryCrm


class Sent:
    def __init__(self) -> None:
        self.commands: list[bytes] = []
        self.results: list[dict[str, Any]] = []
        self.dead: list[dict[str, Any]] = []

    def outputs(self) -> Outputs:
        async def command(key: bytes | None, value: bytes) -> None:
            self.commands.append(value)

        async def result(key: bytes | None, value: bytes) -> None:
            self.results.append(result_type().decode(value))

        async def dead(key: bytes | None, value: bytes) -> None:
            self.dead.append(dead_letter_type().decode(value))

        return Outputs("default", command, result, dead)


def change_message(offset: int, value: bytes | None) -> Message:
    return Message("changes", 0, offset, b'{"id": 1}', value)


def envelope(op: str, before: Any, after: Any, lsn: int) -> bytes:
    return json.dumps({"op": op, "before": before, "after": after,
                       "source": {"lsn": lsn, "txId": 1, "ts_ms": 1}}).encode()


async def test_router_turns_every_kind_of_message_into_one_outcome(tmp_path: Path) -> None:
    sent = Sent()
    router = ChangeRouter(ScopeWatcher(tmp_path / "scope.toml"), {}, sent.outputs())
    await router.handle(change_message(0, b"\xffnot json"))
    await router.handle(change_message(1, None))  # tombstone: not a change
    await router.handle(change_message(2, envelope("d", row(1), None, 10)))
    await router.handle(change_message(3, envelope("c", None, row(1, code=" "), 11)))
    await router.handle(change_message(4, envelope("c", None, row(1), 12)))
    assert [r["action"] for r in sent.results] == ["failed", "ignored_delete", "failed"]
    assert [d["offset"] for d in sent.dead] == [0, 3]
    assert sent.dead[0]["value"] == b"\xffnot json"
    [command] = [command_type().decode(c) for c in sent.commands]
    assert command["code"] == "KH001" and command["change_offset"] == 4


async def test_router_survives_an_internal_error(tmp_path: Path) -> None:
    class Broken(dict[str, Any]):
        def get(self, *args: Any) -> Any:
            raise RuntimeError("table unavailable")

    sent = Sent()
    router = ChangeRouter(ScopeWatcher(tmp_path / "scope.toml"), Broken(), sent.outputs())
    await router.handle(change_message(7, envelope("c", None, row(1), 12)))
    assert sent.results[0]["action"] == "failed"
    assert "internal error" in sent.results[0]["reason"]
    assert sent.dead[0]["offset"] == 7


async def test_applier_reports_each_command_and_dead_letters_bad_ones() -> None:
    sent = Sent()
    crm = MemoryCrm()
    cache = CodeCache({}, "default")
    cache.mark_seeded()
    seeded: list[bool] = []

    async def seed() -> None:
        seeded.append(True)

    applier = CommandApplier(SinkEngine(crm, cache, {}), sent.outputs(), seed)
    router = ChangeRouter(ScopeWatcher(Path("/nonexistent/scope.toml")), {}, sent.outputs())
    await router.handle(change_message(0, envelope("c", None, row(1), 12)))
    good = Message("commands", 0, 0, b"1", sent.commands[0])
    await applier.handle_batch([good, Message("commands", 0, 1, b"2", b"garbage")])
    assert [r["action"] for r in sent.results] == ["failed", "created"]
    assert sent.dead[0]["topic"] == "commands" and sent.dead[0]["offset"] == 1
    assert len(crm.records) == 1 and seeded == [True]


async def test_truncated_and_garbage_commands_fail_and_the_batch_goes_on() -> None:
    sent = Sent()
    cache = CodeCache({}, "default")
    cache.mark_seeded()

    async def seed() -> None:
        return None

    crm = MemoryCrm()
    applier = CommandApplier(SinkEngine(crm, cache, {}), sent.outputs(), seed)
    router = ChangeRouter(ScopeWatcher(Path("/nonexistent/scope.toml")), {}, sent.outputs())
    await router.handle(change_message(0, envelope("c", None, row(1), 12)))
    good = sent.commands[0]
    header = command_type().header
    poison = [
        Message("commands", 0, 0, b"1", good[: len(good) // 2]),  # fastavro: EOFError
        Message("commands", 0, 1, b"1", header + b"\xff" * 40),  # fastavro: IndexError
    ]
    await applier.handle_batch([*poison, Message("commands", 0, 2, b"1", good)])
    assert [r["action"] for r in sent.results] == ["failed", "failed", "created"]
    assert all("undecodable command" in r["reason"] for r in sent.results[:2])
    assert [(d["topic"], d["offset"]) for d in sent.dead] == [("commands", 0), ("commands", 1)]
    assert len(crm.records) == 1


async def test_a_step_never_raises_and_leaves_the_offset_unhandled() -> None:
    class Exploding(CommandApplier):
        def __init__(self) -> None:
            pass

        async def handle_batch(self, messages: Sequence[Message]) -> None:
            raise StopIteration  # what fastavro raised from deep inside once

    table: dict[str, Any] = {}

    async def read(topic: str, partition: int, start: int, end: int) -> RangeRead:
        return RangeRead(messages=[], reached=start)

    async def earliest(topic: str, partition: int) -> int:
        return 0

    ledger = OffsetLedger(table, read, earliest)
    lanes = build_lanes(ledger, one_applier(Exploding(), Delivery("test")), PartitionEvents(),
                        batch_size=8, max_held=8)
    step = CommandStep(ledger, lanes)
    await step([Message("commands", 0, 0, b"1", b"x")])
    for _ in range(500):  # the lane tries, fails, and waits to try again
        if lanes.status()[""]["state"] == "retrying":
            break
        await asyncio.sleep(0.01)
    assert lanes.status()[""]["state"] == "retrying"
    assert table == {}  # not handled: it is tried again, or read back after a restart
    await lanes.stop_all()


def tenant_sample(name: str, tenant: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(metrics.exposition().decode())
               for s in f.samples if s.name == name and s.labels.get("tenant") == tenant)


async def test_a_change_is_counted_under_its_own_tenant_not_the_workers(tmp_path: Path) -> None:
    """One worker routes every tenant's changes: the metrics say whose each one was."""
    sent = Sent()
    router = ChangeRouter(ScopeWatcher(tmp_path / "scope.toml"), {}, sent.outputs(),
                          tenant_of={"accounting_pm": "pm_metrics"}.get,
                          scope_of=lambda _t: ScopeWatcher(tmp_path / "scope.toml"))
    consumed = tenant_sample("acct2crm_changes_consumed_total", "pm_metrics")
    dead = tenant_sample("acct2crm_dead_letters_total", "pm_metrics")

    def from_pm(op: str, after: Any, lsn: int) -> bytes:
        body = json.loads(envelope(op, None, after, lsn))
        body["source"]["db"] = "accounting_pm"
        return json.dumps(body).encode()

    await router.handle(change_message(0, from_pm("c", row(1), 12)))
    await router.handle(change_message(1, from_pm("c", row(2, code=" "), 13)))  # a bad row
    assert tenant_sample("acct2crm_changes_consumed_total", "pm_metrics") == consumed + 2
    assert tenant_sample("acct2crm_dead_letters_total", "pm_metrics") == dead + 1
    assert [r["tenant"] for r in sent.results] == ["pm_metrics"]
