"""The reference CRM's SQLite file: one connection shared by threads, one lock.

The customer store and the account table each own their tables; they share
this connection so an account and its customers live in one file and one
restart keeps both.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Database:
    """One SQLite connection in autocommit mode; hold ``lock`` around every use.

    The lock is re-entrant so that ``transaction`` can group calls that take it.
    """

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            # customer data: the owner's only (SQLite gives -wal/-shm the file's mode)
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def columns(self, table: str) -> set[str]:
        """The column names of ``table`` (lock held by the caller)."""
        return {str(row["name"]) for row in self.conn.execute(f"PRAGMA table_info({table})")}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside commit together, at the end, whatever happened in between.

        For many independent writes in one call (a batch): one commit instead of
        one each. A failed statement undoes itself only, so what succeeded
        before an error is kept, as if each had committed.
        """
        with self.lock:
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                self.conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.conn.close()
