"""What every ``/api`` call goes through before its route runs.

The bearer token names the account first, since faults are set per account;
then, in order: injected latency, maintenance (503), an unknown token (401),
the account's rate limit (429 with ``Retry-After``), injected errors (500).
A call whose token is unknown meets the faults set for all accounts. After
the route, an injected lost reply may replace a committed write's answer with
a 502.
Every call is then noted, with its answer, for ``GET /admin/calls``.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from refcrm.accounts import Account, Accounts
from refcrm.journal import CallJournal
from refcrm.ratelimit import retry_after_header
from refcrm.stats import Stats
from refcrm.store import CustomerStore

WRITE_METHODS = frozenset({"POST", "PATCH"})


@dataclass
class CrmState:
    """Everything the routes share; one per app.

    ``store`` is the default account's view of the database (and closes it);
    ``stats`` are the totals of every account; ``token`` is the admin token.
    """

    store: CustomerStore
    accounts: Accounts
    token: bytes
    fault_injection: bool
    stats: Stats
    calls: CallJournal = field(default_factory=CallJournal)
    rng: random.Random = field(default_factory=random.Random)

    def authorised(self, request: Request) -> bool:
        """Whether the call carries the admin token (the default account's)."""
        given = bearer_token(request)
        return given is not None and hmac.compare_digest(given.encode(), self.token)

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate


Route = Callable[[Request, Account], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def bearer_token(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def crm_of(request: Request) -> CrmState:
    crm: CrmState = request.app.state.crm
    return crm


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def unauthorised() -> JSONResponse:
    return error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


def api(route: Route) -> Endpoint:
    """An ``/api`` endpoint: ``route`` behind its account's faults, token and rate limit;
    each call noted."""

    async def endpoint(request: Request) -> Response:
        arrived = time.time()
        response = await guarded(request)
        query = request.url.query
        crm_of(request).calls.note(
            arrived,
            request.method,
            request.url.path + (f"?{query}" if query else ""),
            response.status_code,
            response.headers.get("Retry-After"),
        )
        return response

    async def guarded(request: Request) -> Response:
        crm = crm_of(request)
        account = crm.accounts.by_token(bearer_token(request))
        faults = crm.accounts.faults if account is None else account.faults
        stats = crm.stats if account is None else account.stats
        stats.add("requests")
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.down:
            stats.add("unavailable")
            return error(503, "the CRM is down for maintenance", {"Retry-After": "1"})
        if account is None:
            stats.add("unauthorized")
            return unauthorised()
        wait_s = account.bucket.take()
        if wait_s is not None:
            stats.add("rate_limited")
            return error(
                429,
                f"rate limit of {account.bucket.rate} calls/s exceeded",
                {"Retry-After": retry_after_header(wait_s)},
            )
        if crm.chance(faults.error_rate):
            stats.add("injected_errors")
            return error(500, "injected fault: internal error")
        response = await route(request, account)
        if (
            request.method in WRITE_METHODS
            and response.status_code < 300
            and crm.chance(faults.lost_reply_rate)
        ):
            stats.add("lost_replies")
            return error(502, "injected fault: the write was applied but its reply was lost")
        return response

    return endpoint
