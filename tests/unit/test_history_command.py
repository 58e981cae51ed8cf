"""`acct2crm history CODE`: whose each result is, and in the order things happened."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from acct2crm import progress, result_index
from acct2crm.cli import app
from acct2crm.settings import Settings, reset_settings


def result(tenant: str, applied_at: str, lsn: int, action: str) -> dict[str, Any]:
    return {"tenant": tenant, "code": "PA001", "accounting_id": 7, "op": "c",
            "action": action, "reason": f"{tenant} {action}", "crm_id": 3,
            "applied_at": applied_at, "source": {"lsn": lsn}}


# a live create, then a backfill of the same row (position 0) done later, and acme's own
LIVE = result("default", "2026-12-01T05:43:10.000+00:00", 900, "created")
BACKFILL = result("default", "2026-12-01T05:44:57.000+00:00", 0, "unchanged")
ACME = result("acme", "2026-12-01T05:44:00.000+00:00", 950, "created")


def test_a_history_is_in_the_order_results_were_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def read_results(_s: Settings, offsets: Iterable[int], _stats: Any = None) -> Iterator[Any]:
        assert list(offsets) == [4, 5, 6]
        yield from (BACKFILL, LIVE, ACME)

    monkeypatch.setattr(result_index, "catch_up", lambda *_args: None)
    monkeypatch.setattr(result_index, "code_offsets", lambda *_args: [4, 5, 6])
    monkeypatch.setattr(result_index, "read_results", read_results)
    found = progress.code_history(Settings(), "PA001")
    assert found == [LIVE, ACME, BACKFILL]  # not the backfill first for its position 0


def test_the_table_says_whose_each_line_is_and_tenant_keeps_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "code_history", lambda *_args: [LIVE, ACME, BACKFILL])
    runner = CliRunner()
    both = runner.invoke(app, ["history", "PA001"], env={"COLUMNS": "200"})
    assert both.exit_code == 0, both.output
    header = next(line for line in both.output.splitlines() if "applied at" in line)
    assert "tenant" in header
    lines = [line for line in both.output.splitlines() if "2026-12-01" in line]
    assert ["acme" in line for line in lines] == [False, True, False]
    one = runner.invoke(app, ["history", "PA001", "--tenant", "acme"], env={"COLUMNS": "200"})
    assert one.exit_code == 0, one.output
    assert [line for line in one.output.splitlines() if "2026-12-01" in line] == [
        line for line in one.output.splitlines() if "acme created" in line]
    assert "tenant" not in next(line for line in one.output.splitlines() if "applied at" in line)


def test_a_tenant_nobody_has_is_refused_not_answered_with_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("ACCT2CRM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("ACCT2CRM_HOME", str(tmp_path))
    monkeypatch.setattr(progress, "code_history", lambda *_args: [LIVE, ACME])
    reset_settings()
    try:
        typo = CliRunner().invoke(app, ["history", "PA001", "--tenant", "acm"])
    finally:
        reset_settings()
    assert typo.exit_code == 1
    assert "no tenant 'acm'; the tenants are: default" in typo.output
