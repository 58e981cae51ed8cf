"""CPU seconds a process has used, from ``/proc/<pid>/stat``: whether a worker was busy.

A bench that compares one worker with two must show whether the workers had
CPU to spare; the kernel's per-process counters (user + system time) say it
without a profiler.
"""

from __future__ import annotations

import os
from pathlib import Path

UTIME_FIELD = 14  # 1-based field numbers of proc(5)'s stat line
STIME_FIELD = 15
FIRST_AFTER_COMM = 3  # the state field follows the ")" that ends the command name


def cpu_seconds_of_stat(line: str, ticks_per_s: float) -> float:
    """user + system seconds from one stat line (the command name may hold spaces or ")")."""
    rest = line.rpartition(")")[2].split()
    if len(rest) <= STIME_FIELD - FIRST_AFTER_COMM:
        raise ValueError("not a /proc/<pid>/stat line")
    utime = int(rest[UTIME_FIELD - FIRST_AFTER_COMM])
    stime = int(rest[STIME_FIELD - FIRST_AFTER_COMM])
    return (utime + stime) / ticks_per_s


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds of ``pid`` so far; ``None`` once it is gone."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return cpu_seconds_of_stat(line, float(os.sysconf("SC_CLK_TCK")))
