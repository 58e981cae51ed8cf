"""Progress of long work: plain lines off a terminal, and following the worker's ledger."""

from __future__ import annotations

import io
import time

import pytest

from acct2crm import follow_worker
from acct2crm.settings import Settings
from acct2crm.task_progress import plain_line, track


def test_a_plain_line_says_done_total_rate_and_eta() -> None:
    line = plain_line("backfill", 500, 2000, 5.0, unit="rows")
    assert line == "backfill: 500/2,000 rows (25%), 100 rows/s, ETA 0:15"
    assert plain_line("up", 2, None, 1.0, unit="services").endswith("ETA ?")


def test_off_a_terminal_progress_is_plain_lines() -> None:
    out = io.StringIO()  # not a tty
    with track("replay", 10, "offsets", stream=out) as tracker:
        for _ in range(10):
            tracker.advance()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("replay: 10/10 offsets (100%)")
    assert "\x1b[" not in out.getvalue()  # no terminal control codes in logs


class Seen:
    def __init__(self) -> None:
        self.completed: list[int] = []

    def advance(self, n: int = 1) -> None:
        raise AssertionError("follow sets the count, it does not add to it")

    def update(self, *, completed: int | None = None, total: int | None = None,
               note: str | None = None) -> None:
        if completed is not None:
            self.completed.append(completed)


def test_follow_reports_the_ledger_until_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = iter([None, 104, 107, 109])  # last handled offset, poll after poll
    monkeypatch.setattr(follow_worker, "handled_offsets",
                        lambda _s: {} if (n := next(ledger)) is None else {"t\x1f0": n})
    seen = Seen()
    assert follow_worker.follow(Settings(), "t", 100, 110, seen, sleep=lambda _s: None)
    assert seen.completed == [0, 5, 8, 10]


def test_follow_gives_up_when_the_worker_stops_moving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow_worker, "handled_offsets", lambda _s: {"t\x1f0": 104})
    seen = Seen()
    done = follow_worker.follow(Settings(), "t", 100, 110, seen, idle_timeout_s=0.05,
                                sleep=lambda _s: time.sleep(0.02))
    assert not done
    assert set(seen.completed) == {5}
