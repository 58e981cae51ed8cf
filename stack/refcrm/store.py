"""The reference CRM's customers: one SQLite table, stdlib ``sqlite3``.

Every record belongs to one account, and a ``CustomerStore`` sees one
account's records only (``for_account`` gives another account's view of the
same database). Codes are unique per account on their normalised key
(``code_key``), enforced by a UNIQUE index, so two concurrent creates of
"KH001" and "kh001 " in one account cannot both succeed, while two accounts
may each hold "KH001". Ids are global. Every accepted write stamps
``updated_at``, strictly later than the previous stamp of that record, even
when no value changes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from acct2crm.errors import Acct2CrmError
from refcrm.codes import code_key
from refcrm.database import Database
from refcrm.validation import Values

MAPPED_FIELDS = (
    "code", "name", "tax_code", "address", "phone", "email", "contact_name", "branch_code",
)
RECORD_COLUMNS = ("id", *MAPPED_FIELDS, "external_ref", "created_at", "updated_at")
DEFAULT_ACCOUNT = "default"

SCHEMA = """
CREATE TABLE IF NOT EXISTS customer (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  account       TEXT NOT NULL DEFAULT 'default',
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
"""
INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS customer_account_code_key_uq"
    " ON customer (account, code_key)",
    "CREATE INDEX IF NOT EXISTS customer_account_id ON customer (account, id)",
    "CREATE INDEX IF NOT EXISTS customer_account_external_ref ON customer (account, external_ref)",
)

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
    """One account's customer records; every method is thread-safe and commits."""

    def __init__(self, path: Path | str | Database, account: str = DEFAULT_ACCOUNT) -> None:
        self.database = path if isinstance(path, Database) else Database(path)
        self.account = account
        self._lock = self.database.lock
        self._db = self.database.conn
        if not isinstance(path, Database):
            with self._lock:
                _create_schema(self.database)

    def for_account(self, account: str) -> CustomerStore:
        """The same database as seen by ``account``."""
        return CustomerStore(self.database, account)

    def close(self) -> None:
        self.database.close()

    # reads ---------------------------------------------------------------
    def get(self, customer_id: int) -> Record | None:
        with self._lock:
            return self._by_id(customer_id)

    def find_by_code(self, code: str) -> list[Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM customer WHERE account = ? AND code_key = ? ORDER BY id",
                (self.account, code_key(code)),
            ).fetchall()
        return [_record(row) for row in rows]

    def find_by_codes(self, codes: list[str]) -> list[Record]:
        """Records holding any of ``codes`` (matching as for one code)."""
        keys = sorted({code_key(code) for code in codes})
        if not keys:
            return []
        marks = ", ".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM customer WHERE account = ? AND code_key IN ({marks})"  # noqa: S608 - only marks
                " ORDER BY id",
                (self.account, *keys),
            ).fetchall()
        return [_record(row) for row in rows]

    def find_by_external_ref(self, ref: str) -> list[Record]:
        """Records whose ``external_ref`` is exactly ``ref``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM customer WHERE account = ? AND external_ref = ? ORDER BY id",
                (self.account, ref),
            ).fetchall()
        return [_record(row) for row in rows]

    def page(self, page: int, page_size: int) -> Page:
        """Page ``page`` (from 1) of the account's records ordered by id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM customer WHERE account = ? ORDER BY id LIMIT ? OFFSET ?",
                (self.account, page_size + 1, (page - 1) * page_size),
            ).fetchall()
        more = len(rows) > page_size
        return Page(
            items=[_record(row) for row in rows[:page_size]],
            next_page=page + 1 if more else None,
        )

    def count(self) -> int:
        """The account's records."""
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM customer WHERE account = ?", (self.account,)
            ).fetchone()
        return int(row[0])

    def count_all(self) -> int:
        """Every account's records."""
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
                    "INSERT INTO customer (account, code, code_key, name, tax_code, address,"
                    " phone, email, contact_name, branch_code, external_ref, created_at,"
                    " updated_at)"
                    " VALUES (:account, :code, :code_key, :name, :tax_code, :address, :phone,"
                    " :email, :contact_name, :branch_code, :external_ref, :now, :now)",
                    {**row, "account": self.account, "code_key": code_key(code), "now": now},
                )
            except sqlite3.IntegrityError as exc:
                raise CodeTaken(code, self._owner_of(code)) from exc
            created = self._by_id(cursor.lastrowid)
        assert created is not None
        return created

    def update(self, customer_id: int, values: Values) -> Record | None:
        """Change the given fields (maybe none) and stamp ``updated_at``; None if unknown."""
        with self._lock:
            current = self._by_id(customer_id)
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
            return self._by_id(customer_id)

    def delete(self, customer_id: int) -> bool:
        """Remove a record of any account (ids are global): test clean-up, never /api."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM customer WHERE id = ?", (customer_id,))
        return cursor.rowcount > 0

    # helpers (lock held) -------------------------------------------------
    def _by_id(self, customer_id: int | None) -> Record | None:
        row = self._db.execute(
            "SELECT * FROM customer WHERE id = ? AND account = ?", (customer_id, self.account)
        ).fetchone()
        return None if row is None else _record(row)

    def _owner_of(self, code: str) -> int | None:
        row = self._db.execute(
            "SELECT id FROM customer WHERE account = ? AND code_key = ?",
            (self.account, code_key(code)),
        ).fetchone()
        return None if row is None else int(row[0])


def _create_schema(database: Database) -> None:
    """The customer table; a database from before accounts gets the column (lock held)."""
    db = database.conn
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(SCHEMA)
        if "account" not in database.columns("customer"):
            db.execute(
                "ALTER TABLE customer ADD COLUMN account TEXT NOT NULL DEFAULT 'default'"
            )
        db.execute("DROP INDEX IF EXISTS customer_code_key_uq")  # unique across accounts
        for statement in INDEXES:
            db.execute(statement)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


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
