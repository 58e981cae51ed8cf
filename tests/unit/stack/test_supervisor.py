"""The worker's supervisor: a worker that dies is started again, with a growing backoff."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from devstack.supervisor import Backoff, Supervisor, read_state


class Child:
    def __init__(self, pid: int, code: int, during_wait: object = None) -> None:
        self.pid, self.code, self.during_wait = pid, code, during_wait
        self.signals: list[int] = []

    def wait(self) -> int:
        if callable(self.during_wait):
            self.during_wait()
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)


def test_a_dying_worker_is_restarted_with_a_doubling_backoff(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    started: list[Sequence[str]] = []
    states: list[dict[str, object] | None] = []
    now = [1000.0]

    def clock() -> float:
        now[0] += 1.0  # each child lives one second: a quick death
        return now[0]

    def start(argv: Sequence[str]) -> Child:
        states.append(read_state(state_file))
        started.append(argv)
        if len(started) == 4:
            return Child(100 + len(started), 0, during_wait=lambda: sup.request_stop())
        return Child(100 + len(started), 1)

    sup = Supervisor(["worker"], state_file, backoff=Backoff(base_s=0.001, cap_s=0.003),
                     start=start, clock=clock)
    assert sup.run() == 0
    assert len(started) == 4
    waited = [s["next_start_at"] - s["last_exit_at"] for s in states[1:] if s]  # type: ignore[operator]
    assert waited == pytest.approx([0.001, 0.002, 0.003])  # doubling, capped
    final = read_state(state_file)
    assert final is not None
    assert final["restarts"] == 3 and final["last_exit_code"] == 1
    assert final["child_pid"] == 104


def test_a_stop_is_passed_to_the_worker_and_it_is_not_restarted(tmp_path: Path) -> None:
    children: list[Child] = []

    def start(argv: Sequence[str]) -> Child:
        child = Child(7, -15, during_wait=lambda: sup.request_stop(signal.SIGTERM))
        children.append(child)
        return child

    sup = Supervisor(["worker"], tmp_path / "state.json", start=start)
    assert sup.run() == -15
    assert len(children) == 1 and children[0].signals == [signal.SIGTERM]


def test_a_worker_that_ran_long_starts_the_backoff_over() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    assert [backoff.delay(n) for n in (0, 1, 2, 3, 7, 20)] == [1.0, 1.0, 2.0, 4.0, 60.0, 60.0]


def restart_line(tmp_path: Path, log_format: str) -> str:
    """The first line a real supervisor writes when its child exits with code 3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCT2CRM_")}
    env |= {"ACCT2CRM_HOME": str(tmp_path), "ACCT2CRM_LOG_FORMAT": log_format}
    out = tmp_path / "worker.log"
    with out.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.supervisor", str(tmp_path / "state.json"), "--",
             sys.executable, "-c", "raise SystemExit(3)"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while not out.read_text().endswith("\n") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out.read_text().splitlines()[0]


def test_a_json_worker_log_gets_the_restart_line_as_json(tmp_path: Path) -> None:
    line = json.loads(restart_line(tmp_path, "json"))
    assert line["logger"] == "devstack.supervisor" and line["level"] == "warning"
    assert line["message"] == "worker exited with code 3; starting it again in 1s (restart 1)"


def test_a_text_worker_log_gets_it_as_the_workers_text(tmp_path: Path) -> None:
    line = restart_line(tmp_path, "text")
    assert line.startswith("[") and line.endswith(
        "] [WARNING] devstack.supervisor: worker exited with code 3; starting it again in 1s "
        "(restart 1)"), line
