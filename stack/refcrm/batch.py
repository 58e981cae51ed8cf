"""``POST /api/customers/batch``: up to 100 creates and updates in one call, in order.

As real CRMs' batch APIs do, the whole batch is one call for the gate (one
token of the account's rate limit, one draw of its injected faults: a faulted
batch fails whole), and each operation gets the status and body the same
single call would get, in the order given; a failing operation does not stop
the next one. Only a body that is not a batch (not an object, no list of
operations, more than 100) is refused whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from refcrm import writes
from refcrm.accounts import Account
from refcrm.replies import invalid, json_body
from refcrm.validation import FieldError, InvalidFields
from refcrm.writes import Outcome

MAX_OPERATIONS = 100
KEYS = {"create": frozenset({"op", "fields"}), "update": frozenset({"op", "id", "fields"})}


@dataclass(frozen=True)
class Operation:
    op: str
    fields: Any
    customer_id: int = 0


async def batch_customers(request: Request, crm: Account) -> Response:
    try:
        body = await json_body(request)
    except InvalidFields as exc:
        crm.stats.add("rejected")
        return invalid(exc.errors, 400)
    try:
        operations = operations_of(body)
    except InvalidFields as exc:
        crm.stats.add("rejected")
        return invalid(exc.errors)
    results = await run_in_threadpool(apply_all, crm, operations)
    crm.stats.add("batches")
    return JSONResponse({"results": results})


def operations_of(body: Any) -> list[Any]:
    """The list of operations of a batch body; ``InvalidFields`` when it is not one."""
    if not isinstance(body, dict):
        raise InvalidFields([FieldError(None, "the body must be a JSON object")])
    errors = [FieldError(str(key), "is not a known field") for key in body if key != "operations"]
    operations = body.get("operations")
    if not isinstance(operations, list):
        errors.append(FieldError("operations", "is required: a list of operations"))
    elif len(operations) > MAX_OPERATIONS:
        errors.append(
            FieldError("operations", f"at most {MAX_OPERATIONS} per batch, got {len(operations)}")
        )
    if errors:
        raise InvalidFields(errors)
    assert isinstance(operations, list)
    return operations


def apply_all(account: Account, operations: list[Any]) -> list[dict[str, Any]]:
    """Each operation in order, each with its own result. Blocking (SQLite)."""
    with account.store.database.transaction():
        return [result_of(apply_one(account, operation)) for operation in operations]


def apply_one(account: Account, operation: Any) -> Outcome:
    try:
        checked = checked_operation(operation)
    except InvalidFields as exc:
        return writes.rejected(account, exc)
    if checked.op == "create":
        return writes.create(account, checked.fields)
    return writes.update(account, checked.customer_id, checked.fields)


def checked_operation(operation: Any) -> Operation:
    """The operation's parts; ``InvalidFields`` when its shape is wrong (its fields are
    validated later, exactly as the single call validates them)."""
    if not isinstance(operation, dict):
        raise InvalidFields([FieldError(None, "an operation must be a JSON object")])
    op = operation.get("op")
    if not isinstance(op, str) or op not in KEYS:
        raise InvalidFields([FieldError("op", "must be 'create' or 'update'")])
    errors = [
        FieldError(str(key), f"is not part of an {op} operation")
        for key in operation
        if key not in KEYS[op]
    ]
    if "fields" not in operation:
        errors.append(FieldError("fields", "is required"))
    customer_id: Any = operation.get("id") if op == "update" else 0
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        errors.append(FieldError("id", "is required: the customer's id, an integer"))
    if errors:
        raise InvalidFields(errors)
    return Operation(op, operation["fields"], customer_id)


def result_of(outcome: Outcome) -> dict[str, Any]:
    """``{"status", "record"}`` when accepted, else ``{"status", "detail", ...}``."""
    if outcome.accepted:
        return {"status": outcome.status, "record": outcome.body}
    return {"status": outcome.status, **outcome.body}
