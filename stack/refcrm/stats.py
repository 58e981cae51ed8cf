"""Counters of what the reference CRM was asked and did (``GET /admin/stats``).

``writes`` counts accepted POST and PATCH calls on ``/api/customers`` (each
one stamps ``updated_at``): a test proves "zero CRM writes" by reading it
before and after. Counters start at zero with the process.
"""

from __future__ import annotations

import threading
from collections import Counter

COUNTERS = (
    "requests",  # every /api call, whatever its answer
    "reads",  # answered GETs (200 or 404)
    "writes",  # accepted POST/PATCH (201/200)
    "creates",  # accepted POST
    "updates",  # accepted PATCH
    "conflicts",  # 409
    "rejected",  # 400/422
    "not_found",  # 404 on a record
    "unauthorized",  # 401
    "rate_limited",  # 429
    "unavailable",  # 503 because down
    "injected_errors",  # 5xx from error_rate
    "lost_replies",  # writes committed but answered 502 (lost_reply_rate)
)


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {name: self._counts[name] for name in COUNTERS}
