"""Counters of what the reference CRM was asked and did (``GET /admin/stats``).

``writes`` counts accepted creates and updates on ``/api/customers``, single
or inside a batch (each one stamps ``updated_at``): a test proves "zero CRM
writes" by reading it before and after. Each account has its own counters,
which also add to the CRM's totals. Counters start at zero with the process.
"""

from __future__ import annotations

import threading
from collections import Counter

COUNTERS = (
    "requests",  # every /api call, whatever its answer
    "reads",  # answered GETs (200 or 404)
    "writes",  # accepted creates and updates (201/200), batch items included
    "creates",  # accepted creates
    "updates",  # accepted updates
    "conflicts",  # 409
    "rejected",  # 400/422
    "not_found",  # 404 on a record
    "unauthorized",  # 401
    "rate_limited",  # 429
    "unavailable",  # 503 because down
    "injected_errors",  # 5xx from error_rate
    "lost_replies",  # writes committed but answered 502 (lost_reply_rate)
    "batches",  # answered POST /api/customers/batch (its items count as above)
)


class Stats:
    def __init__(self, totals: Stats | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._totals = totals

    def add(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._counts[name] += 1
        if self._totals is not None:
            self._totals.add(*names)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {name: self._counts[name] for name in COUNTERS}
