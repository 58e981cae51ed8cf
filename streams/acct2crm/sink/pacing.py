"""Retry and pacing policies for CRM calls (rule R4: wait, never drop)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from acct2crm import metrics
from acct2crm.errors import CrmMisconfigured, CrmRetryable

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter; ``Retry-After`` wins when given."""

    base_s: float = 0.2
    cap_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), max(self.cap_s, 60.0))
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(attempt, 30))
        jitter: float = random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
        return ceiling / 2 + jitter


class RateLimiter:
    """Spaces calls at most ``per_s`` a second across all lanes (0 = no pacing).

    A 429 teaches it (``learn``): every lane holds until the CRM's
    ``Retry-After`` has passed, instead of each running into the limit in
    turn, and the pace drops below what the CRM just refused: the rate of
    the last second's calls when no pace was set, else 10% slower. What a 429
    taught is forgotten ``relax_after_s`` after the last one: a CRM's limit
    may be lowered for a while (maintenance, a busy hour) and raised again,
    and a sink that never sped up again would stay slow for good.
    """

    def __init__(self, per_s: float, relax_after_s: float = 30.0) -> None:
        self._configured = 1.0 / per_s if per_s > 0 else 0.0
        self._interval = self._configured
        self._relax_after_s = relax_after_s
        self._learned_at: float | None = None  # the last 429's time, while its lesson holds
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._recent: deque[float] = deque()  # call times of the last second (for learn)

    @property
    def per_s(self) -> float:
        return 1.0 / self._interval if self._interval else 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        self._recent.append(now)
        while self._recent and self._recent[0] < now - 1.0:
            self._recent.popleft()
        if self._learned_at is not None and now - self._learned_at > self._relax_after_s:
            self._interval, self._learned_at = self._configured, None
        if not self._interval and self._next <= now:
            return
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            # a slot lost to idleness (the lanes waited for a reply) may be used once
            self._next = max(now - self._interval, self._next) + self._interval

    def learn(self, retry_after: float | None) -> None:
        """The CRM answered 429: hold everyone, then go slower than what it refused."""
        now = time.monotonic()
        self._next = max(self._next, now + (retry_after if retry_after is not None else 1.0))
        recent = sum(1 for t in self._recent if t >= now - 1.0)
        per_s = self.per_s * 0.9 if self._interval else recent * 0.9
        if per_s >= 1.0:
            self._interval = 1.0 / per_s
        self._learned_at = now


class WaitState:
    """Whether the sink is waiting for the CRM, and why: shown by status."""

    def __init__(self, tenant: str = "default") -> None:
        self.tenant = tenant  # for the metrics' labels
        self.reason: str | None = None
        self.since: float | None = None
        self.retries = 0
        self.configuration = False  # the operator must fix a setting (token, crm_url)

    def waiting(self, reason: str, *, configuration: bool = False) -> None:
        if self.reason is None:
            self.since = time.time()
        self.reason = reason
        self.configuration = configuration
        self.retries += 1

    def clear(self) -> None:
        self.reason = None
        self.since = None
        self.configuration = False

    @property
    def kind(self) -> str | None:
        """``configuration`` or ``unavailable`` while waiting; None otherwise."""
        if self.reason is None:
            return None
        return "configuration" if self.configuration else "unavailable"


class OutageGate:
    """While the CRM fails, one call retries on the backoff and the others wait for it.

    Left to their own timers, N lanes would each call a CRM that is down, and
    once it answered again each would come back at its own moment (up to the
    backoff's cap later) and in no particular order. Instead the first call
    to fail probes; a call that fails while another probes waits until any
    call succeeds, then goes at once. Waiters wake in the order they failed,
    which is the order they were sent, so the backlog reaches the CRM in
    commit order as far as the lanes allow (rule R4: waits in order).
    """

    def __init__(self) -> None:
        self._up = asyncio.Event()
        self._up.set()
        self._prober: asyncio.Task[Any] | None = None
        self.waiting = 0  # calls waiting behind the probe now

    def probed_by_another(self) -> bool:
        prober = self._prober
        return (prober is not None and not prober.done()
                and prober is not asyncio.current_task())

    def probe(self) -> None:
        """This task retries; calls failing from now on wait for it."""
        self._prober = asyncio.current_task()
        self._up.clear()

    async def wait_up(self, at_most_s: float) -> None:
        """Until a call succeeds or the probe ends (then the waiter tries itself)."""
        self.waiting += 1
        try:
            await asyncio.wait_for(self._up.wait(), timeout=max(at_most_s, 0.001))
        except TimeoutError:
            pass
        finally:
            self.waiting -= 1

    def up(self) -> None:
        """A call succeeded (or the probe stopped): every waiter goes on."""
        self._up.set()
        self._prober = None

    def leave(self) -> None:
        """The task leaves retrying without success (cancelled, refused for good)."""
        if self._prober is not None and self._prober is asyncio.current_task():
            self.up()


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    state: WaitState,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[CrmRetryable, float], None] | None = None,
    gate: OutageGate | None = None,
) -> T:
    """Run ``call`` until it succeeds or fails permanently; retryable errors wait.

    With ``gate`` the calls sharing it retry as one (``OutageGate``).
    """
    attempt = 0
    try:
        while True:
            try:
                result = await call()
            except CrmRetryable as exc:
                state.waiting(str(exc), configuration=isinstance(exc, CrmMisconfigured))
                if gate is not None and gate.probed_by_another():
                    await gate.wait_up(max(policy.cap_s, 60.0))  # a safety net: leave() wakes
                    continue
                delay = policy.delay(attempt, exc.retry_after)
                metrics.crm_retry(state.tenant, exc, delay)
                if on_retry is not None:
                    on_retry(exc, delay)
                if gate is not None:
                    gate.probe()
                attempt += 1
                await sleep(delay)
                continue
            if gate is not None:
                gate.up()
            state.clear()
            return result
    finally:
        if gate is not None:
            gate.leave()
