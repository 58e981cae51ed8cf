"""Routes of the reference CRM (docs/contract.md) and ``create_app``.

Public, no token: ``GET /healthz``.
``/api`` (an account's bearer token; that account's records, faults and rate
limit): ``GET /api/customers?code=K``, ``?codes=A,B,...`` (at most 100),
``?external_ref=R``, ``GET /api/customers?page=N&page_size=M``,
``GET /api/customers/{id}``, ``POST /api/customers``,
``PATCH /api/customers/{id}``, ``POST /api/customers/batch``. No delete.
``/admin`` (the admin token; never faulted nor rate limited, see admin.py):
``GET /admin/stats``, ``GET|POST /admin/accounts`` and
``GET /admin/writes|calls?after=SEQ`` always;
``GET|POST /admin/faults`` and ``DELETE /admin/customers/{id}`` (test
clean-up) only when started with fault injection, else 404.
"""

from __future__ import annotations

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

from refcrm import writes
from refcrm.access_log import AccessLog
from refcrm.accounts import Account, Accounts
from refcrm.admin import (
    admin_accounts,
    admin_calls,
    admin_delete_customer,
    admin_faults,
    admin_stats,
    admin_writes,
)
from refcrm.batch import batch_customers
from refcrm.gate import CrmState, api, error
from refcrm.replies import invalid, json_body
from refcrm.stats import Stats
from refcrm.store import CustomerStore
from refcrm.validation import FieldError, InvalidFields
from refcrm.writes import Outcome

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_CODES = 100  # ?codes=A,B,... names at most 100 codes (docs/contract.md)


# ------------------------------------------------------------------ helpers
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
async def list_customers(request: Request, crm: Account) -> Response:
    query = request.query_params
    if "code" in query:
        items = await run_in_threadpool(crm.store.find_by_code, query["code"])
    elif "codes" in query:
        codes = [c for c in query["codes"].split(",") if c.strip()]
        if len(codes) > MAX_CODES:
            crm.stats.add("rejected")
            return invalid([FieldError("codes", f"at most {MAX_CODES} codes")])
        items = await run_in_threadpool(crm.store.find_by_codes, codes)
    elif "external_ref" in query:
        items = await run_in_threadpool(crm.store.find_by_external_ref, query["external_ref"])
    else:
        return await _list_page(request, crm)
    crm.stats.add("reads")
    return JSONResponse({"items": items})


async def _list_page(request: Request, crm: Account) -> Response:
    try:
        page = int_param(request, "page", 1, 1)
        page_size = min(int_param(request, "page_size", DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
    except InvalidFields as exc:
        crm.stats.add("rejected")
        return invalid(exc.errors)
    result = await run_in_threadpool(crm.store.page, page, page_size)
    crm.stats.add("reads")
    return JSONResponse({"items": result.items, "next_page": result.next_page})


async def get_customer(request: Request, crm: Account) -> Response:
    customer_id = record_id(request)
    record = await run_in_threadpool(crm.store.get, customer_id)
    crm.stats.add("reads")
    if record is None:
        crm.stats.add("not_found")
        return error(404, f"customer {customer_id} not found")
    return JSONResponse(record)


async def _written(request: Request, crm: Account, write: Callable[[Any], Outcome]) -> Response:
    """Decode the body (400 when it is not JSON), then ``write`` it in a worker thread."""
    try:
        body = await json_body(request)
    except InvalidFields as exc:
        crm.stats.add("rejected")
        return invalid(exc.errors, 400)
    outcome = await run_in_threadpool(write, body)
    headers = None
    if outcome.status == 201:
        headers = {"Location": f"/api/customers/{outcome.body['id']}"}
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)


async def create_customer(request: Request, crm: Account) -> Response:
    return await _written(request, crm, partial(writes.create, crm))


async def patch_customer(request: Request, crm: Account) -> Response:
    return await _written(request, crm, partial(writes.update, crm, record_id(request)))


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
        Route("/api/customers/batch", api(batch_customers), methods=["POST"]),
        Route("/api/customers/{customer_id:int}", api(get_customer), methods=["GET"]),
        Route("/api/customers/{customer_id:int}", api(patch_customer), methods=["PATCH"]),
        Route("/admin/stats", admin_stats, methods=["GET"]),
        Route("/admin/accounts", admin_accounts, methods=["GET", "POST"]),
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
    store, totals = CustomerStore(db_path), Stats()
    app.state.crm = CrmState(
        store=store,
        accounts=Accounts(store, secret, base_rate_limit_per_s=rate_limit_per_s, totals=totals),
        token=secret.encode(),
        fault_injection=fault_injection,
        stats=totals,
    )
    return app


def crm_of_app(app: Starlette) -> CrmState:
    crm: CrmState = app.state.crm
    return crm
