"""The local broker waits for a group's members as Kafka does, unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from acct2crm.settings import Settings
from devstack import kafka
from devstack.paths import StackPaths


def delay_line(settings: Settings) -> str:
    text = kafka.server_properties(settings, StackPaths.of(settings))
    [line] = [x for x in text.splitlines() if x.startswith("group.initial.rebalance.delay.ms=")]
    return line


def test_by_default_workers_started_together_share_the_first_assignment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCT2CRM_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", raising=False)
    assert delay_line(Settings(home=tmp_path)) == "group.initial.rebalance.delay.ms=3000"


def test_the_wait_is_a_setting(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_group_initial_rebalance_delay_ms=0)
    assert delay_line(settings) == "group.initial.rebalance.delay.ms=0"
