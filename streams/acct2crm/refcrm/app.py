"""Routes of the reference CRM (SPEC section 4) and ``create_app``.

Public, no token: ``GET /healthz``.
``/api`` (bearer token; faults, rate limit): ``GET /api/customers?code=K``,
``GET /api/customers?page=N&page_size=M``, ``GET /api/customers/{id}``,
``POST /api/customers``, ``PATCH /api/customers/{id}``. No delete.
``/admin`` (bearer token; never faulted nor rate limited): ``GET /admin/stats``
and ``GET /admin/writes|calls?after=SEQ`` (accepted writes; every ``/api`` call)
always; ``GET|POST /admin/faults`` and ``DELETE /admin/customers/{id}`` (test
clean-up) only when started with fault injection, else 404.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from acct2crm.refcrm.access_log import AccessLog
from acct2crm.refcrm.gate import CrmState, api, crm_of, error, unauthorised
from acct2crm.refcrm.store import CodeTaken, CustomerStore
from acct2crm.refcrm.validation import FieldError, InvalidFields, validate_create, validate_patch

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


# ------------------------------------------------------------------ helpers
def invalid(errors: list[FieldError], status: int = 422) -> JSONResponse:
    detail = "; ".join(f"{e.field or 'body'}: {e.reason}" for e in errors)
    body = {"detail": detail, "errors": [e.as_json() for e in errors]}
    return JSONResponse(body, status_code=status)


def conflict(exc: CodeTaken) -> JSONResponse:
    reason = f"already used by customer {exc.existing_id}"
    body = {
        "detail": str(exc),
        "existing_id": exc.existing_id,
        "errors": [{"field": "code", "reason": reason}],
    }
    return JSONResponse(body, status_code=409)


async def json_body(request: Request) -> Any:
    """The decoded body; ``InvalidFields`` (answered 400) when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidFields([FieldError(None, f"malformed JSON: {exc}")]) from exc


def int_param(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidFields([FieldError(name, "must be an integer")]) from None
    if value < minimum:
        raise InvalidFields([FieldError(name, f"must be at least {minimum}")])
    return value


def record_id(request: Request) -> int:
    value: int = request.path_params["customer_id"]
    return value


# ---------------------------------------------------------------- /healthz
async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


# -------------------------------------------------------------------- /api
async def list_customers(request: Request, crm: CrmState) -> Response:
    if "code" in request.query_params:
        items = await run_in_threadpool(crm.store.find_by_code, request.query_params["code"])
        crm.stats.add("reads")
        return JSONResponse({"items": items})
    try:
        page = int_param(request, "page", 1, 1)
        page_size = min(int_param(request, "page_size", DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
    except InvalidFields as exc:
        crm.stats.add("rejected")
        return invalid(exc.errors)
    result = await run_in_threadpool(crm.store.page, page, page_size)
    crm.stats.add("reads")
    return JSONResponse({"items": result.items, "next_page": result.next_page})


async def get_customer(request: Request, crm: CrmState) -> Response:
    customer_id = record_id(request)
    record = await run_in_threadpool(crm.store.get, customer_id)
    crm.stats.add("reads")
    if record is None:
        crm.stats.add("not_found")
        return error(404, f"customer {customer_id} not found")
    return JSONResponse(record)


async def _validated_write(
    request: Request,
    crm: CrmState,
    validate: Callable[[Any], dict[str, Any]],
    store: Callable[[dict[str, Any]], dict[str, Any] | None],
    kind: str,
) -> tuple[Response | None, dict[str, Any] | None]:
    """Parse, validate and store one write: (the error answer, or None; the stored record)."""
    try:
        body = await json_body(request)
    except InvalidFields as exc:
        crm.stats.add("rejected")
        return invalid(exc.errors, 400), None
    try:
        values = validate(body)
        record = await run_in_threadpool(store, values)
    except InvalidFields as exc:
        crm.stats.add("rejected")
        return invalid(exc.errors), None
    except CodeTaken as exc:
        crm.stats.add("conflicts")
        return conflict(exc), None
    if record is not None:
        crm.journal.note(kind, record, list(values))
    return None, record


async def create_customer(request: Request, crm: CrmState) -> Response:
    failure, record = await _validated_write(
        request, crm, validate_create, crm.store.create, "create"
    )
    if failure is not None:
        return failure
    assert record is not None
    crm.stats.add("writes", "creates")
    return JSONResponse(
        record, status_code=201, headers={"Location": f"/api/customers/{record['id']}"}
    )


async def patch_customer(request: Request, crm: CrmState) -> Response:
    customer_id = record_id(request)
    failure, record = await _validated_write(
        request, crm, validate_patch, partial(crm.store.update, customer_id), "update"
    )
    if failure is not None:
        return failure
    if record is None:
        crm.stats.add("not_found")
        return error(404, f"customer {customer_id} not found")
    crm.stats.add("writes", "updates")
    return JSONResponse(record)


# ------------------------------------------------------------------ /admin
async def admin_stats(request: Request) -> Response:
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    customers = await run_in_threadpool(crm.store.count)
    body: dict[str, Any] = {
        **crm.stats.snapshot(),
        "customers": customers,
        "fault_injection": crm.fault_injection,
    }
    return JSONResponse(body)


async def admin_writes(request: Request) -> Response:
    """Accepted writes in the order the CRM took them, after ``?after=SEQ``."""
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    try:
        after = int_param(request, "after", 0, 0)
    except InvalidFields as exc:
        return invalid(exc.errors)
    items, last = crm.journal.since(after)
    return JSONResponse({"items": items, "last_seq": last})


async def admin_calls(request: Request) -> Response:
    """``/api`` calls as they arrived (status, ``Retry-After``), after ``?after=SEQ``."""
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    try:
        after = int_param(request, "after", 0, 0)
    except InvalidFields as exc:
        return invalid(exc.errors)
    items, last = crm.calls.since(after)
    return JSONResponse({"items": items, "last_seq": last})


async def admin_faults(request: Request) -> Response:
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    if request.method == "POST":
        try:
            crm.apply_faults(crm.faults.updated(await json_body(request)))
        except InvalidFields as exc:
            return invalid(exc.errors)
    return JSONResponse(crm.faults.as_json())


async def admin_delete_customer(request: Request) -> Response:
    crm = crm_of(request)
    if not crm.authorised(request):
        return unauthorised()
    customer_id = record_id(request)
    if not await run_in_threadpool(crm.store.delete, customer_id):
        return error(404, f"customer {customer_id} not found")
    return Response(status_code=204)


# --------------------------------------------------------------------- app
async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    headers = exc.headers if isinstance(exc, HTTPException) else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def create_app(
    db_path: Path | str,
    token: str | SecretStr,
    *,
    fault_injection: bool = False,
    rate_limit_per_s: int = 0,
) -> Starlette:
    """The reference CRM on the SQLite file ``db_path`` (created if missing)."""
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/customers", api(list_customers), methods=["GET"]),
        Route("/api/customers", api(create_customer), methods=["POST"]),
        Route("/api/customers/{customer_id:int}", api(get_customer), methods=["GET"]),
        Route("/api/customers/{customer_id:int}", api(patch_customer), methods=["PATCH"]),
        Route("/admin/stats", admin_stats, methods=["GET"]),
        Route("/admin/writes", admin_writes, methods=["GET"]),
        Route("/admin/calls", admin_calls, methods=["GET"]),
    ]
    if fault_injection:
        routes += [
            Route("/admin/faults", admin_faults, methods=["GET", "POST"]),
            Route(
                "/admin/customers/{customer_id:int}", admin_delete_customer, methods=["DELETE"]
            ),
        ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        crm_of_app(app).store.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(AccessLog)],
        exception_handlers={HTTPException: http_error, Exception: http_error},
        lifespan=lifespan,
    )
    app.state.crm = CrmState(
        store=CustomerStore(db_path),
        token=secret.encode(),
        fault_injection=fault_injection,
        base_rate_limit_per_s=rate_limit_per_s,
    )
    return app


def crm_of_app(app: Starlette) -> CrmState:
    crm: CrmState = app.state.crm
    return crm
