"""CPU seconds from /proc/<pid>/stat: what bench (e) reads to show whether a worker was busy."""

from __future__ import annotations

import os

import pytest

from devstack.proc_cpu import cpu_seconds, cpu_seconds_of_stat

# proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
# cmajflt utime stime cutime cstime ...; the name may hold spaces and ")"
STAT = "4242 (python -m a) b) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 7 3 20 0 5 0"


def test_user_and_system_time_are_read_after_the_command_name() -> None:
    assert cpu_seconds_of_stat(STAT, 100.0) == 3.0  # (250 + 50) ticks at 100 a second


def test_a_line_that_is_not_a_stat_line_is_refused() -> None:
    with pytest.raises(ValueError, match="stat"):
        cpu_seconds_of_stat("4242 (x) S 1 2", 100.0)


def test_this_process_has_used_some_cpu_and_a_gone_one_none() -> None:
    sum(range(200_000))
    used = cpu_seconds(os.getpid())
    assert used is not None and used > 0
    assert cpu_seconds(2**22 + 1) is None  # above pid_max's largest value: never a process
