"""The pause file and the worker's gate on it."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct2crm import pause
from acct2crm.cli import app
from acct2crm.errors import ConfigError
from acct2crm.pause import PauseGate, pause_path, read_paused
from acct2crm.settings import Settings, reset_settings


def with_tenants(home: Path, *ids: str) -> Settings:
    """Settings whose tenants file names ``ids`` beside the default tenant."""
    lines = []
    for tenant in ids:
        (home / f"{tenant}.token").write_text("token\n")
        lines += [f"[tenants.{tenant}]", f'crm_token_file = "{home / f"{tenant}.token"}"']
    (home / "tenants.toml").write_text("\n".join(lines) + "\n")
    return Settings(home=home)


def test_pause_and_resume_write_the_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert pause.pause(settings, "default")
    assert not pause.pause(settings, "default")
    assert set(read_paused(pause_path(settings))) == {"default"}
    assert pause.resume(settings, "default")
    assert not pause.resume(settings, "default")
    assert read_paused(pause_path(settings)) == {}


def test_a_name_no_tenant_has_is_refused_and_nothing_is_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = with_tenants(tmp_path, "acme")
    with pytest.raises(ConfigError, match="no tenant 'defualt'; the tenants are: default, acme"):
        pause.pause(settings, "defualt")
    assert read_paused(pause_path(settings)) == {}
    assert pause.pause(settings, "acme")
    # the command says it in one line, exit 1
    monkeypatch.setenv("ACCT2CRM_HOME", str(tmp_path))
    monkeypatch.delenv("ACCT2CRM_CONFIG", raising=False)
    reset_settings()
    try:
        result = CliRunner().invoke(app, ["pause", "acmee"])
    finally:
        reset_settings()
    assert result.exit_code == 1
    assert "acct2crm: no tenant 'acmee'; the tenants are: default, acme" in result.output
    assert set(read_paused(pause_path(settings))) == {"acme"}


def test_a_broken_tenants_file_does_not_stop_a_pause(tmp_path: Path) -> None:
    (tmp_path / "tenants.toml").write_text("[tenants.acme\n")
    assert pause.pause(Settings(home=tmp_path), "acme")  # the worker keeps its last good list


def test_the_pause_file_is_its_owners_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    pause.pause(settings, "default")
    assert stat.S_IMODE(pause_path(settings).stat().st_mode) == 0o600


async def test_the_gate_holds_a_paused_tenant_until_it_is_resumed(tmp_path: Path) -> None:
    settings = with_tenants(tmp_path, "a")
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
    settings = with_tenants(tmp_path, "a", "b")
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
    settings = with_tenants(tmp_path, "a")
    pause.pause(settings, "a")
    gate = PauseGate(pause_path(settings))
    assert set(gate.paused()) == {"a"}
    for broken in ('{"a": "soon"}', "[1, 2]", "not json"):
        pause_path(settings).unlink()
        pause_path(settings).write_text(broken)
        assert set(gate.paused()) == {"a"}
        assert gate.error is not None
