"""The recovery watch restarts a worker whose table restore stopped moving, and only then."""

from __future__ import annotations

from types import SimpleNamespace

from acct2crm.app.recovery_watch import RecoveryWatch, restore_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_restore_that_stays_still_is_stalled_after_the_limit() -> None:
    clock = Clock()
    watch = RecoveryWatch(60.0, clock)
    assert watch.stalled(True, (("changelog[2]", 10),)) is None
    clock.now = 59.0
    assert watch.stalled(True, (("changelog[2]", 10),)) is None
    clock.now = 61.0
    assert watch.stalled(True, (("changelog[2]", 10),)) == 61.0


def test_a_slow_restore_that_moves_is_never_stalled() -> None:
    clock = Clock()
    watch = RecoveryWatch(60.0, clock)
    for step in range(10):  # ten minutes, one offset further every minute
        clock.now = step * 59.0
        assert watch.stalled(True, (("changelog[0]", step),)) is None


def test_the_clock_starts_again_after_a_restore_ends() -> None:
    clock = Clock()
    watch = RecoveryWatch(60.0, clock)
    watch.stalled(True, ())
    clock.now = 50.0
    assert watch.stalled(False, ()) is None  # restore done, the worker runs
    clock.now = 100.0
    assert watch.stalled(True, ()) is None  # a new restore: its own 60 s
    clock.now = 159.0
    assert watch.stalled(True, ()) is None
    clock.now = 161.0
    assert watch.stalled(True, ()) is not None


def test_zero_turns_the_watch_off() -> None:
    clock = Clock()
    watch = RecoveryWatch(0.0, clock)
    watch.stalled(True, ())
    clock.now = 10_000.0
    assert watch.stalled(True, ()) is None


def test_progress_is_read_from_faust_recovery_offsets() -> None:
    recovery = SimpleNamespace(in_recovery=True, active_offsets={"b": 3, "a": 7})
    running, reached = restore_progress(recovery)
    assert running is True
    assert reached == (("a", 7), ("b", 3))
    recovery.active_offsets["a"] = 8
    assert restore_progress(recovery)[1] != reached
