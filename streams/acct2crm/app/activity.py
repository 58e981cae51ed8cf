"""What the worker saw lately, per tenant, for the status page: kept in memory, bounded.

Counts by action for the current day (UTC; since the worker started if it
started today), the last failures with their reasons, and the last results
of recently seen codes for the history view. Memory stays bounded at any
volume: ``MAX_CODES`` codes of ``PER_CODE`` results each, oldest code dropped
first. A restarted worker starts empty; the full history stays on the results
topic (``acct2crm history CODE``).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from acct2crm.rules.codes import code_key

LAST_FAILURES = 20
PER_CODE = 50
MAX_CODES = 20_000
STARTED = time.time()  # the worker process: counts start here, or at midnight UTC after


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


@dataclass
class TenantActivity:
    tenant: str
    day: str = field(default_factory=_today)
    counting_since: float = STARTED
    counts_today: Counter[str] = field(default_factory=Counter)
    failures: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LAST_FAILURES))
    by_code: OrderedDict[str, deque[dict[str, Any]]] = field(default_factory=OrderedDict)

    def record(self, result: dict[str, Any]) -> None:
        today = _today()
        if today != self.day:
            midnight = datetime.fromisoformat(today).replace(tzinfo=UTC).timestamp()
            self.day, self.counting_since = today, max(STARTED, midnight)
            self.counts_today.clear()
        self.counts_today[str(result.get("action"))] += 1
        if result.get("action") == "failed":
            self.failures.append(result)
        code = result.get("code")
        if code:
            key = code_key(str(code))
            kept = self.by_code.pop(key, None) or deque(maxlen=PER_CODE)
            kept.append(result)
            self.by_code[key] = kept  # most recent last
            while len(self.by_code) > MAX_CODES:
                self.by_code.popitem(last=False)

    def history(self, code: str) -> list[dict[str, Any]]:
        return list(self.by_code.get(code_key(code), ()))


class Activity:
    """Every tenant's activity, made on its first result."""

    def __init__(self) -> None:
        self._tenants: dict[str, TenantActivity] = {}
        self.last_result_at = float("-inf")  # time.monotonic() of the latest result

    def tenant(self, name: str) -> TenantActivity:
        found = self._tenants.get(name)
        if found is None:
            found = self._tenants[name] = TenantActivity(name)
        return found

    def record(self, result: dict[str, Any]) -> None:
        self.last_result_at = time.monotonic()
        self.tenant(str(result.get("tenant"))).record(result)

    def tenants(self) -> list[str]:
        return sorted(self._tenants)


ACTIVITY = Activity()
