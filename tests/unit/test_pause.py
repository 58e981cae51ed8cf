"""The pause file and the worker's gate on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from acct2crm import pause
from acct2crm.pause import PauseGate, pause_path, read_paused
from acct2crm.settings import Settings


def test_pause_and_resume_write_the_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert pause.pause(settings, "default")
    assert not pause.pause(settings, "default")
    assert set(read_paused(pause_path(settings))) == {"default"}
    assert pause.resume(settings, "default")
    assert not pause.resume(settings, "default")
    assert read_paused(pause_path(settings)) == {}


async def test_the_gate_holds_a_paused_tenant_until_it_is_resumed(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    pause.pause(settings, "a")
    ticks: list[float] = []

    async def sleep(seconds: float) -> None:
        ticks.append(seconds)
        if len(ticks) == 3:
            pause.resume(settings, "a")

    gate = PauseGate(pause_path(settings), sleep=sleep)
    await gate.wait("b")  # another tenant is not held
    assert ticks == []
    await gate.wait("a")
    assert len(ticks) >= 3
    assert gate.holding == set()


async def test_the_gate_knows_each_held_tenant_while_several_wait(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    pause.pause(settings, "a")
    pause.pause(settings, "b")
    gate = PauseGate(pause_path(settings), sleep=lambda s: asyncio.sleep(0.001))
    waits = [asyncio.create_task(gate.wait(t)) for t in ("a", "b")]
    while gate.holding != {"a", "b"}:
        await asyncio.sleep(0.001)
    pause.resume(settings, "a")
    await waits[0]
    assert gate.holding == {"b"}  # b still waits after a left the gate
    pause.resume(settings, "b")
    await waits[1]
    assert gate.holding == set()


def test_a_broken_pause_file_keeps_the_last_good_state(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    pause.pause(settings, "a")
    gate = PauseGate(pause_path(settings))
    assert set(gate.paused()) == {"a"}
    for broken in ('{"a": "soon"}', "[1, 2]", "not json"):
        pause_path(settings).unlink()
        pause_path(settings).write_text(broken)
        assert set(gate.paused()) == {"a"}
        assert gate.error is not None
