"""A token bucket per account, shared by all its ``/api`` calls, as a SaaS CRM limits a tenant."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` calls per second with bursts of up to ``rate``; rate 0 = no limit."""

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rate = 0
        self._tokens = 0.0
        self._at = clock()
        self.set_rate(rate)

    @property
    def rate(self) -> int:
        return self._rate

    def set_rate(self, rate: int) -> None:
        """Change the limit; a new limit starts with a full bucket."""
        with self._lock:
            if rate != self._rate:
                self._rate = rate
                self._tokens = float(rate)
                self._at = self._clock()

    def take(self) -> float | None:
        """Spend one call: None when allowed, else the seconds until one is."""
        with self._lock:
            if self._rate <= 0:
                return None
            now = self._clock()
            self._tokens = min(float(self._rate), self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / self._rate


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, at least 1, as the ``Retry-After`` header carries them."""
    return str(max(1, math.ceil(wait_s)))
