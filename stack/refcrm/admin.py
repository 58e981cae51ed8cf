"""``/admin`` routes: the admin token only (the default account's), never faulted nor limited.

Always: ``GET /admin/stats[?account=ID]``, ``GET|POST /admin/accounts`` (the
local stack makes a tenant's account through it, fault injection or not), and
``GET /admin/writes|calls?after=SEQ`` (accepted writes of every account; every
``/api`` call), which tests read to check order and pacing.
With fault injection only: ``GET|POST /admin/faults`` and
``DELETE /admin/customers/{id}`` (test clean-up).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from refcrm.accounts import UnknownAccount, check_account_id
from refcrm.gate import crm_of, error, unauthorised
from refcrm.replies import invalid, json_body
from refcrm.validation import FieldError, InvalidFields


async def admin_stats(request: Request) -> Response:
    """Counters of every account together, or of ``?account=ID`` alone."""
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    account_id = request.query_params.get("account")
    if account_id is None:
        customers = await run_in_threadpool(crm.store.count_all)
        body: dict[str, Any] = {**crm.stats.snapshot(), "customers": customers}
    else:
        try:
            account = crm.accounts.get(account_id)
        except UnknownAccount as exc:
            return error(404, str(exc))
        customers = await run_in_threadpool(account.store.count)
        body = {"account": account.id, **account.stats.snapshot(), "customers": customers}
    return JSONResponse({**body, "fault_injection": crm.fault_injection})


async def admin_writes(request: Request) -> Response:
    """Accepted writes in the order the CRM took them, after ``?after=SEQ``."""
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    try:
        after = _after(request)
    except InvalidFields as exc:
        return invalid(exc.errors)
    items, last = crm.accounts.journal.since(after)
    return JSONResponse({"items": items, "last_seq": last})


async def admin_calls(request: Request) -> Response:
    """``/api`` calls as they arrived (status, ``Retry-After``), after ``?after=SEQ``."""
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    try:
        after = _after(request)
    except InvalidFields as exc:
        return invalid(exc.errors)
    items, last = crm.calls.since(after)
    return JSONResponse({"items": items, "last_seq": last})


def _after(request: Request) -> int:
    raw = request.query_params.get("after") or "0"
    if not raw.isdigit():
        raise InvalidFields([FieldError("after", "must be an integer of at least 0")])
    return int(raw)


async def admin_accounts(request: Request) -> Response:
    """GET: the account ids. POST ``{"account": ID}``: make it (201) or find it (200),
    answering ``{"account", "token"}`` either way."""
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    if request.method == "GET":
        return JSONResponse({"accounts": crm.accounts.ids()})
    try:
        body = await json_body(request)
    except InvalidFields as exc:
        return invalid(exc.errors, 400)
    try:
        account_id = _account_of(body)
    except InvalidFields as exc:
        return invalid(exc.errors)
    token, created = await run_in_threadpool(crm.accounts.create, account_id)
    return JSONResponse(
        {"account": account_id, "token": token}, status_code=201 if created else 200
    )


async def admin_faults(request: Request) -> Response:
    """The faults of all accounts, or of ``account`` (a query parameter or a body key)."""
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    try:
        if request.method == "POST":
            faults = crm.accounts.set_faults(await json_body(request))
        elif "account" in request.query_params:
            faults = crm.accounts.get(request.query_params["account"]).faults
        else:
            faults = crm.accounts.faults
    except InvalidFields as exc:
        return invalid(exc.errors)
    except UnknownAccount as exc:
        return error(404, str(exc))
    return JSONResponse(faults.as_json())


async def admin_delete_customer(request: Request) -> Response:
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    customer_id: int = request.path_params["customer_id"]
    if not await run_in_threadpool(crm.store.delete, customer_id):
        return error(404, f"customer {customer_id} not found")
    return Response(status_code=204)


def _account_of(body: Any) -> str:
    if not isinstance(body, dict):
        raise InvalidFields([FieldError(None, "the body must be a JSON object")])
    unknown = [FieldError(str(key), "is not a known field") for key in body if key != "account"]
    if unknown:
        raise InvalidFields(unknown)
    return check_account_id(body.get("account"))
