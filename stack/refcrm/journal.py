"""What the reference CRM received, in order: ``GET /admin/writes`` and ``/admin/calls``.

Results on Kafka say what the sync decided; these say what the CRM actually
received and when, so a test can check the order writes were applied in
(writes) or how a client paced itself after a 429 (calls). A write names the
record and code and which fields were sent, a call its method, path, status
and ``Retry-After``; never a field's value (customer names, phones and emails
stay out). Both are bounded: the oldest entries are dropped first, ``seq``
keeps counting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

MAX_ENTRIES = 10_000


class Journal:
    """A bounded, numbered list of entries, safe across threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self._seq = 0

    def _add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append({"seq": self._seq, **entry})

    def since(self, after: int) -> tuple[list[dict[str, Any]], int]:
        """Entries with ``seq > after``, oldest first, and the last ``seq`` given."""
        with self._lock:
            return [dict(e) for e in self._entries if e["seq"] > after], self._seq


class WriteJournal(Journal):
    def note(
        self, kind: str, record: dict[str, Any], sent: list[str], account: str = "default"
    ) -> None:
        """One accepted write: ``kind`` is "create" or "update"."""
        self._add(
            {
                "account": account,
                "kind": kind,
                "id": record.get("id"),
                "code": record.get("code"),
                "external_ref": record.get("external_ref"),
                "fields": sorted(sent),
                "at": time.time(),
            }
        )


class CallJournal(Journal):
    def note(
        self, at: float, method: str, target: str, status: int, retry_after: str | None
    ) -> None:
        """One ``/api`` call, stamped when it arrived (``target``: path and query)."""
        self._add(
            {
                "at": at,
                "method": method,
                "target": target,
                "status": status,
                "retry_after": retry_after,
            }
        )
