"""The reference CRM's own database: one SQLite file, stdlib ``sqlite3``.

Codes are unique on their normalised key (``code_key``), enforced by a UNIQUE
index, so two concurrent creates of "KH001" and "kh001 " cannot both succeed.
Every accepted write stamps ``updated_at``, strictly later than the previous
stamp of that record, even when no value changes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from acct2crm.errors import Acct2CrmError
from acct2crm.refcrm.codes import code_key
from acct2crm.refcrm.validation import Values

MAPPED_FIELDS = (
    "code", "name", "tax_code", "address", "phone", "email", "contact_name", "branch_code",
)
RECORD_COLUMNS = ("id", *MAPPED_FIELDS, "external_ref", "created_at", "updated_at")

SCHEMA = """
CREATE TABLE IF NOT EXISTS customer (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  code          TEXT NOT NULL,
  code_key      TEXT NOT NULL,
  name          TEXT NOT NULL,
  tax_code      TEXT,
  address       TEXT,
  phone         TEXT,
  email         TEXT,
  contact_name  TEXT,
  branch_code   TEXT,
  external_ref  TEXT,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS customer_code_key_uq ON customer (code_key);
"""

Record = dict[str, Any]


class CodeTaken(Acct2CrmError):
    """Another record already has this code (by the matching rule); answered 409.

    Like ``InvalidFields``, it never leaves the CRM service: a route turns it
    into an HTTP answer.
    """

    def __init__(self, code: str, existing_id: int | None) -> None:
        super().__init__(f"code {code!r} is already used by customer {existing_id}")
        self.code = code
        self.existing_id = existing_id


@dataclass(frozen=True)
class Page:
    items: list[Record]
    next_page: int | None


class CustomerStore:
    """Customer records in SQLite; every method is thread-safe and commits."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            # customer data: the owner's only (SQLite gives -wal/-shm the file's mode)
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # reads ---------------------------------------------------------------
    def get(self, customer_id: int) -> Record | None:
        with self._lock:
            return self._one("SELECT * FROM customer WHERE id = ?", (customer_id,))

    def find_by_code(self, code: str) -> list[Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM customer WHERE code_key = ? ORDER BY id", (code_key(code),)
            ).fetchall()
        return [_record(row) for row in rows]

    def page(self, page: int, page_size: int) -> Page:
        """Page ``page`` (from 1) of every record ordered by id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM customer ORDER BY id LIMIT ? OFFSET ?",
                (page_size + 1, (page - 1) * page_size),
            ).fetchall()
        more = len(rows) > page_size
        return Page(
            items=[_record(row) for row in rows[:page_size]],
            next_page=page + 1 if more else None,
        )

    def count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM customer").fetchone()
        return int(row[0])

    # writes --------------------------------------------------------------
    def create(self, values: Values) -> Record:
        """Insert a record; ``CodeTaken`` when its code matches another one's."""
        now = _stamp(datetime.now(UTC))
        row = {name: values.get(name) for name in (*MAPPED_FIELDS, "external_ref")}
        code = str(row["code"])
        with self._lock:
            try:
                cursor = self._db.execute(
                    "INSERT INTO customer (code, code_key, name, tax_code, address, phone,"
                    " email, contact_name, branch_code, external_ref, created_at, updated_at)"
                    " VALUES (:code, :code_key, :name, :tax_code, :address, :phone, :email,"
                    " :contact_name, :branch_code, :external_ref, :now, :now)",
                    {**row, "code_key": code_key(code), "now": now},
                )
            except sqlite3.IntegrityError as exc:
                raise CodeTaken(code, self._owner_of(code)) from exc
            created = self._one("SELECT * FROM customer WHERE id = ?", (cursor.lastrowid,))
        assert created is not None
        return created

    def update(self, customer_id: int, values: Values) -> Record | None:
        """Change the given fields (maybe none) and stamp ``updated_at``; None if unknown."""
        with self._lock:
            current = self._one("SELECT * FROM customer WHERE id = ?", (customer_id,))
            if current is None:
                return None
            changes: dict[str, Any] = dict(values)
            if "code" in values:
                changes["code_key"] = code_key(str(values["code"]))
            changes["updated_at"] = _next_stamp(current["updated_at"])
            assignments = ", ".join(f"{name} = :{name}" for name in changes)
            try:
                self._db.execute(
                    f"UPDATE customer SET {assignments} WHERE id = :id",  # noqa: S608 - names are ours
                    {**changes, "id": customer_id},
                )
            except sqlite3.IntegrityError as exc:
                code = str(values["code"])
                raise CodeTaken(code, self._owner_of(code)) from exc
            return self._one("SELECT * FROM customer WHERE id = ?", (customer_id,))

    def delete(self, customer_id: int) -> bool:
        """Remove a record (test clean-up only, never an /api route)."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM customer WHERE id = ?", (customer_id,))
        return cursor.rowcount > 0

    # helpers (lock held) -------------------------------------------------
    def _one(self, sql: str, params: tuple[Any, ...]) -> Record | None:
        row = self._db.execute(sql, params).fetchone()
        return None if row is None else _record(row)

    def _owner_of(self, code: str) -> int | None:
        row = self._db.execute(
            "SELECT id FROM customer WHERE code_key = ?", (code_key(code),)
        ).fetchone()
        return None if row is None else int(row[0])


def _record(row: sqlite3.Row) -> Record:
    return {name: row[name] for name in RECORD_COLUMNS}


def _stamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, e.g. ``2025-01-31T08:00:00.000001Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _next_stamp(previous: str) -> str:
    """Now, or one microsecond after ``previous`` if the clock has not moved past it."""
    now = datetime.now(UTC)
    before = datetime.strptime(previous, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return _stamp(max(now, before + timedelta(microseconds=1)))
