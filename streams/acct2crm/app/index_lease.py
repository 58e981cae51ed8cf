"""One indexing process per result index file.

Workers on one machine share the state folder, so they share the result
index (result_index.py). Each used to read and decode every result every
second; one write won and the others' reads were thrown away: with two
workers, each spent CPU on the other's results too. The worker holding this
lease (an exclusive ``flock`` on a file next to the index) indexes; the
others try again on their next tick, so a dead holder (the lock goes with its
process, even on SIGKILL) is replaced within a second. Workers on other
machines have their own index and their own lease.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class IndexLease:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def held(self) -> bool:
        """Whether this process holds the lease, taking it when it is free."""
        if self._fd is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
