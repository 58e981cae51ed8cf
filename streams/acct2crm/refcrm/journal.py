"""The order in which the reference CRM accepted writes (``GET /admin/writes``).

Results on Kafka say what the sync decided; this says what the CRM actually
received and when, so a test can check the order writes were applied in.
Each entry names the record and code and which fields were sent, never their
values (customer names, phones and emails stay out of it). Bounded: the
oldest entries are dropped first; ``seq`` keeps counting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

MAX_ENTRIES = 10_000


class WriteJournal:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self._seq = 0

    def note(self, kind: str, record: dict[str, Any], sent: list[str]) -> None:
        """One accepted write: ``kind`` is "create" or "update"."""
        with self._lock:
            self._seq += 1
            self._entries.append(
                {
                    "seq": self._seq,
                    "kind": kind,
                    "id": record.get("id"),
                    "code": record.get("code"),
                    "external_ref": record.get("external_ref"),
                    "fields": sorted(sent),
                    "at": time.time(),
                }
            )

    def since(self, after: int) -> tuple[list[dict[str, Any]], int]:
        """Entries with ``seq > after``, oldest first, and the last ``seq`` given."""
        with self._lock:
            return [dict(e) for e in self._entries if e["seq"] > after], self._seq
