"""Keeps the local stack's worker running: a worker that dies is started again.

``python -m devstack.supervisor STATE_FILE -- ARGV...`` runs ARGV as its
child and restarts it whenever it exits without being told to stop, after a
backoff that doubles with each quick death (a worker that ran ``stable_s``
starts the count again). SIGTERM/SIGINT are passed on to the child, and the
supervisor ends once the child has. The child dies with the supervisor
(``PR_SET_PDEATHSIG``), so stopping or killing the recorded pid never leaves
a worker behind. ``STATE_FILE`` (JSON) says how often the worker was
restarted and why, for ``acct2crm status``. Its own lines go to the worker's
log in the worker's ``log_format``, so a JSON log stays JSON on every line.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import logging.config
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from acct2crm.errors import Acct2CrmError
from acct2crm.log_format import logging_config
from acct2crm.settings import get_settings

PR_SET_PDEATHSIG = 1
log = logging.getLogger("devstack.supervisor")


@dataclass(frozen=True)
class Backoff:
    base_s: float = 1.0
    cap_s: float = 60.0
    stable_s: float = 60.0  # a child that ran this long died for a new reason: start over

    def delay(self, quick_deaths: int) -> float:
        return float(min(self.cap_s, self.base_s * 2.0 ** max(quick_deaths - 1, 0)))


@dataclass
class SupervisorState:
    child_pid: int | None = None
    started_at: float | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    last_exit_at: float | None = None
    next_start_at: float | None = None

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The supervisor's last word, or None when there is no supervisor state."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


class Child(Protocol):
    pid: int

    def wait(self) -> int: ...
    def send_signal(self, sig: int) -> None: ...


Start = Callable[[Sequence[str]], Child]


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start_child(argv: Sequence[str]) -> Child:
    return subprocess.Popen(list(argv), preexec_fn=_die_with_parent)  # noqa: PLW1509


class Supervisor:
    def __init__(
        self,
        argv: Sequence[str],
        state_file: Path,
        *,
        backoff: Backoff | None = None,
        start: Start = start_child,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._argv = list(argv)
        self._state_file = state_file
        self._backoff = backoff or Backoff()
        self._start = start
        self._clock = clock
        self._stop = threading.Event()
        self._child: Child | None = None
        self.state = SupervisorState()

    def request_stop(self, sig: int = signal.SIGTERM) -> None:
        self._stop.set()
        if self._child is not None:
            with contextlib.suppress(ProcessLookupError):
                self._child.send_signal(sig)

    def run(self) -> int:
        """Run the child until asked to stop; its last exit code."""
        quick_deaths, code = 0, 0
        while not self._stop.is_set():
            self._child = self._start(self._argv)
            began = self._clock()
            self.state.child_pid, self.state.started_at = self._child.pid, began
            self.state.next_start_at = None
            self.state.save(self._state_file)
            if self._stop.is_set():  # asked to stop while the child was starting
                self.request_stop()
            code = self._child.wait()
            if self._stop.is_set():
                break
            ended = self._clock()
            quick_deaths = 0 if ended - began >= self._backoff.stable_s else quick_deaths + 1
            delay = self._backoff.delay(quick_deaths)
            self.state.restarts += 1
            self.state.last_exit_code, self.state.last_exit_at = code, ended
            self.state.child_pid, self.state.next_start_at = None, ended + delay
            self.state.save(self._state_file)
            log.warning("worker exited with code %s; starting it again in %gs (restart %d)",
                        code, delay, self.state.restarts)
            self._stop.wait(delay)
        return code


def log_like_the_worker() -> None:
    """The worker's format (text, or JSON); a config the worker cannot read either gets
    text here, and the worker's own start says what is wrong with it."""
    try:
        log_format = get_settings().log_format
    except Acct2CrmError:
        log_format = "text"
    logging.config.dictConfig(logging_config(log_format, "INFO"))


def main(args: Sequence[str]) -> int:
    log_like_the_worker()
    state_file, _, argv = args[0], args[1], args[2:]
    supervisor = Supervisor(argv, Path(state_file))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: supervisor.request_stop(signum))
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
