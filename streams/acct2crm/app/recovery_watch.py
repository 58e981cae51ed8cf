"""A worker whose table recovery stopped moving is restarted, not left waiting.

When a partition moves (a worker joined, left or was killed), Faust restores
the new owner's tables from their changelogs before any agent runs. Under
SIGKILL tests we saw that restore stall for good: Faust kept logging "No event
received for active tp ... since recovery start" and every tenant of the
worker waited, with nothing to tell the operator but a warning a minute.
Restarting the worker recovers (a fresh consumer restores the same
partitions), and a restart is safe at any moment: every offset counts as
handled only once its work is done (ledger.py, lanes.py). So a timer watches
the restore's progress: while it runs and nothing has been restored for
``stall_s``, the worker exits with ``EXIT_RECOVERY_STALLED`` for its
supervisor (the local stack's, systemd, Kubernetes) to start it again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Hashable
from typing import Any

import faust

log = logging.getLogger(__name__)

EXIT_RECOVERY_STALLED = 75  # EX_TEMPFAIL: try again
CHECK_EVERY_S = 5.0


class RecoveryWatch:
    """Says when a running restore has not moved for ``stall_s``; pure apart from the clock."""

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stall_s = stall_s
        self._clock = clock
        self._seen: tuple[Hashable, float] | None = None  # last progress seen, and when

    def stalled(self, in_recovery: bool, progress: Hashable) -> float | None:
        """Seconds without progress once past ``stall_s`` (else None); ``progress`` is
        anything that changes whenever the restore moves (the offsets it reached)."""
        now = self._clock()
        if not in_recovery or self._stall_s <= 0:
            self._seen = None
            return None
        if self._seen is None or self._seen[0] != progress:
            self._seen = (progress, now)
            return None
        idle = now - self._seen[1]
        return idle if idle >= self._stall_s else None


def restore_progress(recovery: Any) -> tuple[bool, Hashable]:
    """Whether Faust's restore runs, and the offsets it has reached so far."""
    offsets = getattr(recovery, "active_offsets", {}) or {}
    reached = tuple(sorted((str(tp), int(o)) for tp, o in dict(offsets).items()))
    return bool(getattr(recovery, "in_recovery", False)), reached


def register_recovery_watch(
    app: faust.App, stall_s: float, exit_now: Callable[[int], Any] = os._exit,
) -> RecoveryWatch:
    watch = RecoveryWatch(stall_s)

    @app.timer(interval=CHECK_EVERY_S, name="recovery-watch")  # type: ignore[untyped-decorator]
    async def watch_recovery() -> None:
        try:
            running, reached = restore_progress(getattr(app.tables, "recovery", None))
            idle = watch.stalled(running, reached)
        except Exception:  # a timer that raises stops; the watch must go on
            log.exception("could not read the table restore's progress")
            return
        if idle is not None:
            log.error("the tables' restore made no progress for %.0f s (a Faust recovery "
                      "stall); exiting with %d so the worker is started again",
                      idle, EXIT_RECOVERY_STALLED)
            logging.shutdown()
            exit_now(EXIT_RECOVERY_STALLED)  # not a clean stop: a stalled restore may hang it

    return watch
