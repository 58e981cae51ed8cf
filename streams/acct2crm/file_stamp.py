"""When an operator's file (scope, mapping, tenants) last changed, looked up sparingly.

The watchers used to stat their file for every change routed: three stats a
change, about a tenth of the worker's CPU during a replay. A file is now
looked at again only ``RECHECK_S`` after the last look, so an edit is in force
for the changes routed from at most that long after it: far less than a
change takes from its commit to the worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

RECHECK_S = 0.05

Stamp = tuple[int, int, int] | None  # (mtime_ns, size, inode); None: no such file


class FileStamp:
    def __init__(self, path: Path, every_s: float = RECHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._path = os.fspath(path)
        self._every_s = every_s
        self._clock = clock
        self._next = float("-inf")
        self._last: Stamp = None

    def read(self) -> Stamp:
        """The file's stamp, as last seen no more than ``every_s`` ago."""
        now = self._clock()
        if now >= self._next:
            self._next = now + self._every_s
            try:
                st = os.stat(self._path)
                self._last = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:  # FileNotFoundError included: no file
                self._last = None
        return self._last
