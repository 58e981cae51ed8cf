"""One create or one update, validated and stored, as the single routes and batches do it.

A batch item must behave exactly like the same single call (same validation,
same 409, same ``updated_at`` stamp, same counters), so both go through here.
Blocking (SQLite): call these from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refcrm.accounts import Account
from refcrm.replies import invalid_body
from refcrm.store import CodeTaken
from refcrm.validation import InvalidFields, validate_create, validate_patch


@dataclass(frozen=True)
class Outcome:
    """The status and body a single call would answer."""

    status: int
    body: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return self.status < 300


def create(account: Account, fields: Any) -> Outcome:
    """201 with the record; 409 when the code is taken in the account; 422 when invalid."""
    try:
        values = validate_create(fields)
        record = account.store.create(values)
    except InvalidFields as exc:
        return rejected(account, exc)
    except CodeTaken as exc:
        return _conflict(account, exc)
    account.stats.add("writes", "creates")
    account.journal.note("create", record, list(values), account.id)
    return Outcome(201, record)


def update(account: Account, customer_id: int, fields: Any) -> Outcome:
    """200 with the record; 422 when invalid (before 404); 404; 409 when the new code is taken."""
    try:
        values = validate_patch(fields)
        record = account.store.update(customer_id, values)
    except InvalidFields as exc:
        return rejected(account, exc)
    except CodeTaken as exc:
        return _conflict(account, exc)
    if record is None:
        account.stats.add("not_found")
        return Outcome(404, {"detail": f"customer {customer_id} not found"})
    account.stats.add("writes", "updates")
    account.journal.note("update", record, list(values), account.id)
    return Outcome(200, record)


def rejected(account: Account, exc: InvalidFields, status: int = 422) -> Outcome:
    account.stats.add("rejected")
    return Outcome(status, invalid_body(exc.errors))


def _conflict(account: Account, exc: CodeTaken) -> Outcome:
    account.stats.add("conflicts")
    reason = f"already used by customer {exc.existing_id}"
    return Outcome(
        409,
        {
            "detail": str(exc),
            "existing_id": exc.existing_id,
            "errors": [{"field": "code", "reason": reason}],
        },
    )
