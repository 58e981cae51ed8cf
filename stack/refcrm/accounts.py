"""Accounts of the reference CRM: one bearer token each, kept with the customers.

As a SaaS CRM keeps its tenants apart, each account sees only its own
customers and has its own rate-limit bucket, counters and faults. The account
``default`` always exists; its token is the one the CRM was started with
(``crm_token``), which is also the admin token. Other accounts are made by
``POST /admin/accounts`` with a generated token, stored in the ``account``
table of the CRM's database so that a restart keeps them. The token is stored
as is (not hashed) because asking for an existing account again answers its
token: the local stack's ``tenants add`` is idempotent through that.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from acct2crm.errors import Acct2CrmError
from refcrm.faults import Faults
from refcrm.journal import WriteJournal
from refcrm.ratelimit import TokenBucket
from refcrm.stats import Stats
from refcrm.store import DEFAULT_ACCOUNT, CustomerStore
from refcrm.validation import FieldError, InvalidFields

ACCOUNT_ID = re.compile(r"[a-z0-9_]{1,32}")
TOKEN_BYTES = 24
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS account ("
    " id TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)"
)


class UnknownAccount(Acct2CrmError):
    """No account has this id; answered 404 by the admin routes."""

    def __init__(self, account: str) -> None:
        super().__init__(f"no account {account!r}")
        self.account = account


@dataclass
class Account:
    """One account: what an ``/api`` route works with once the token is known."""

    id: str
    store: CustomerStore
    stats: Stats
    base_rate_limit_per_s: int
    faults: Faults = field(default_factory=Faults)
    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    journal: WriteJournal = field(default_factory=WriteJournal)  # shared by every account

    def __post_init__(self) -> None:
        self.set_faults(self.faults)

    def set_faults(self, faults: Faults) -> None:
        """New faults; a rate limit > 0 overrides the CRM's start-up limit for this account."""
        self.faults = faults
        self.bucket.set_rate(faults.rate_limit_per_s or self.base_rate_limit_per_s)


def check_account_id(value: Any) -> str:
    """The account id, or ``InvalidFields`` (field ``account``) when it is not one."""
    if not isinstance(value, str) or ACCOUNT_ID.fullmatch(value) is None:
        raise InvalidFields([FieldError("account", "must match [a-z0-9_]{1,32}")])
    return value


class Accounts:
    """Every account by id and by token, and the faults that apply to all of them."""

    def __init__(
        self,
        store: CustomerStore,
        admin_token: str,
        *,
        base_rate_limit_per_s: int,
        totals: Stats,
        journal: WriteJournal | None = None,
    ) -> None:
        self._store = store
        self.journal = journal or WriteJournal()
        self._base_rate_limit_per_s = base_rate_limit_per_s
        self._totals = totals
        self._admin_token = admin_token
        self._adding = threading.Lock()  # two creates of one account make one Account
        self._by_id: dict[str, Account] = {}
        self._by_digest: dict[bytes, tuple[bytes, Account]] = {}
        # the faults set without an account: every account's, and a new account's
        self.faults = Faults()
        self._add(DEFAULT_ACCOUNT, admin_token)
        for account_id, token in self._stored():
            self._add(account_id, token)

    # lookups -------------------------------------------------------------
    def get(self, account_id: str) -> Account:
        """The account, or ``UnknownAccount``."""
        account = self._by_id.get(account_id)
        if account is None:
            raise UnknownAccount(account_id)
        return account

    def by_token(self, given: str | None) -> Account | None:
        """The account whose token this is, or None."""
        if not given:
            return None
        raw = given.encode()
        entry = self._by_digest.get(hashlib.sha256(raw).digest())
        if entry is None or not hmac.compare_digest(entry[0], raw):
            return None
        return entry[1]

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    # changes -------------------------------------------------------------
    def create(self, account_id: str) -> tuple[str, bool]:
        """(the account's token, whether it was made now); idempotent. Blocking (SQLite)."""
        if check_account_id(account_id) == DEFAULT_ACCOUNT:
            return self._admin_token, False
        database = self._store.database
        with database.lock:
            cursor = database.conn.execute(
                "INSERT OR IGNORE INTO account (id, token, created_at) VALUES (?, ?, ?)",
                (account_id, secrets.token_urlsafe(TOKEN_BYTES), datetime.now(UTC).isoformat()),
            )
            row = database.conn.execute(
                "SELECT token FROM account WHERE id = ?", (account_id,)
            ).fetchone()
        token = str(row["token"])
        with self._adding:
            if account_id not in self._by_id:
                self._add(account_id, token)
        return token, cursor.rowcount > 0

    def set_faults(self, body: Any) -> Faults:
        """Apply ``POST /admin/faults``: to one account with ``"account"``, else to all.

        The keys given change, the others stay (``{}`` changes nothing).
        ``InvalidFields`` for a wrong value, ``UnknownAccount`` for an unknown id.
        """
        if not isinstance(body, dict):
            raise InvalidFields([FieldError(None, "the body must be a JSON object")])
        changes = dict(body)
        target = changes.pop("account", None)
        if target is not None:
            account = self.get(check_account_id(target))
            account.set_faults(account.faults.updated(changes))
            return account.faults
        self.faults = self.faults.updated(changes)  # validates before any account changes
        for account in self._by_id.values():
            account.set_faults(account.faults.updated(changes))
        return self.faults

    # helpers -------------------------------------------------------------
    def _add(self, account_id: str, token: str) -> None:
        account = Account(
            id=account_id,
            store=self._store.for_account(account_id),
            stats=Stats(self._totals),
            base_rate_limit_per_s=self._base_rate_limit_per_s,
            faults=self.faults,
            journal=self.journal,
        )
        raw = token.encode()
        self._by_digest[hashlib.sha256(raw).digest()] = (raw, account)
        self._by_id[account_id] = account

    def _stored(self) -> list[tuple[str, str]]:
        database = self._store.database
        with database.lock:
            database.conn.execute(SCHEMA)
            rows = database.conn.execute(
                "SELECT id, token FROM account WHERE id != ? ORDER BY id", (DEFAULT_ACCOUNT,)
            ).fetchall()
        return [(str(row["id"]), str(row["token"])) for row in rows]
