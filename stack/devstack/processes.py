"""Starting, finding and stopping the stack's processes by pid.

A pid file holds the pid and the process's start time (from /proc), so a pid
the kernel has since given to another program is never mistaken for ours and
``down`` only ever signals what ``up`` started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Popen objects of children started by this process, kept so they are reaped
# (no zombies in a long test session) and never garbage-collected while running.
_children: dict[int, subprocess.Popen[bytes]] = {}


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: split after its closing paren
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        _reap(pid)
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    child = _children.pop(pid, None)
    if child is not None:
        child.poll()
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int) -> bool:
    return start_time(pid) is not None


def write_pid(path: Path, pid: int) -> None:
    started = start_time(pid)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{pid} {started or 0}\n")
    staging.replace(path)


def read_pid(path: Path) -> int | None:
    """The pid recorded in ``path`` if that very process still runs."""
    try:
        parts = path.read_text().split()
        pid, recorded = int(parts[0]), int(parts[1])
    except (OSError, ValueError, IndexError):
        return None
    current = start_time(pid)
    if current is None or (recorded and current != recorded):
        return None
    return pid


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    cwd: Path,
    extra_env: Mapping[str, str] | None = None,
) -> int:
    """Start a long-running process in its own session, output appended to ``log_file``.

    It runs in ``cwd`` (its own state folder, so it never depends on where the
    command was typed) with umask 077: what it creates is its owner's only.
    The child inherits this process's environment (passed through, not read)
    with ``extra_env`` on top.
    """
    log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, **extra_env} if extra_env else None
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "ab") as log:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            umask=0o077,
        )
    _children[child.pid] = child
    return child.pid


def stop(pid: int, *, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> bool:
    """Signal ``pid``, then SIGKILL it after ``timeout_s``; True once it is gone."""
    if not is_alive(pid):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if wait_gone(pid, timeout_s):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return wait_gone(pid, 10.0)


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)


def find_by_cwd(folder: Path, marker: str) -> int | None:
    """A live process working in ``folder`` whose command line holds ``marker``.

    Every service runs in its own state folder, so this finds a process of this
    stack whose pid file was lost (a start interrupted between the two).
    """
    try:
        wanted = os.path.realpath(folder)
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") != wanted:
                continue
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in command and is_alive(int(entry)):
            return int(entry)
    return None


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last lines of a log file (empty when there is none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def last_error_line(path: Path) -> str | None:
    """The most telling line of a log after a failed start: the last error, if any."""
    recent = tail(path, 200)
    for marker in ("FATAL", "ERROR", "Exception", "Error"):
        for line in reversed(recent):
            if marker in line:
                return line.strip()[:300]
    return recent[-1].strip()[:300] if recent else None
