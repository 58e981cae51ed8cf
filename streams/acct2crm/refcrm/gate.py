"""What every ``/api`` call goes through before its route runs.

In order: injected latency, maintenance (503), the bearer token (401), the
rate limit (429 with ``Retry-After``), injected errors (500). After the route,
an injected lost reply may replace a committed write's answer with a 502.
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

from acct2crm.refcrm.faults import Faults
from acct2crm.refcrm.journal import CallJournal, WriteJournal
from acct2crm.refcrm.ratelimit import TokenBucket, retry_after_header
from acct2crm.refcrm.stats import Stats
from acct2crm.refcrm.store import CustomerStore

WRITE_METHODS = frozenset({"POST", "PATCH"})


@dataclass
class CrmState:
    """Everything the routes share; one per app."""

    store: CustomerStore
    token: bytes
    fault_injection: bool
    base_rate_limit_per_s: int
    faults: Faults = field(default_factory=Faults)
    stats: Stats = field(default_factory=Stats)
    journal: WriteJournal = field(default_factory=WriteJournal)
    calls: CallJournal = field(default_factory=CallJournal)
    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.apply_faults(self.faults)

    def apply_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.bucket.set_rate(faults.rate_limit_per_s or self.base_rate_limit_per_s)

    def authorised(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self.token)

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate


Route = Callable[[Request, CrmState], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def crm_of(request: Request) -> CrmState:
    crm: CrmState = request.app.state.crm
    return crm


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def unauthorised() -> JSONResponse:
    return error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


def api(route: Route) -> Endpoint:
    """An ``/api`` endpoint: ``route`` behind faults, token and rate limit; each call noted."""

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
        faults = crm.faults
        crm.stats.add("requests")
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.down:
            crm.stats.add("unavailable")
            return error(503, "the CRM is down for maintenance", {"Retry-After": "1"})
        if not crm.authorised(request):
            crm.stats.add("unauthorized")
            return unauthorised()
        wait_s = crm.bucket.take()
        if wait_s is not None:
            crm.stats.add("rate_limited")
            return error(
                429,
                f"rate limit of {crm.bucket.rate} calls/s exceeded",
                {"Retry-After": retry_after_header(wait_s)},
            )
        if crm.chance(faults.error_rate):
            crm.stats.add("injected_errors")
            return error(500, "injected fault: internal error")
        response = await route(request, crm)
        if (
            request.method in WRITE_METHODS
            and response.status_code < 300
            and crm.chance(faults.lost_reply_rate)
        ):
            crm.stats.add("lost_replies")
            return error(502, "injected fault: the write was applied but its reply was lost")
        return response

    return endpoint
