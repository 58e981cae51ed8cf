"""How the worker logs: plain text (default) or one JSON object a line (``log_format = "json"``).

One line per change is logged at debug by ``change_logged``: tenant, offset,
code and action only. The customer's name, phone, email and the CRM token
are never handed to a logger, at any level: a result's reason can quote a
value the CRM rejected, so the change line never carries the reason.

A library line that repeats with every message under load is let through
once a minute with how many like it were held back (``RepeatedLines``):
Faust's "producer buffer full" warning and its "producer flush took" line
came 26,000 times each in a day of bursts on the bench stack, burying
everything else. It marks backpressure (reading waits while the tables'
changelog writes drain), not a fault.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

CHANGES = logging.getLogger("acct2crm.changes")
# the structured fields a record may carry (``extra=``), copied into the JSON object
FIELDS = ("tenant", "topic", "partition", "offset", "code", "action", "op")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields, "exc"}``, one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# (logger, start of the message): let through once a window, with a count of the rest
REPEATING = (
    ("faust.transport.producer", "producer buffer full"),
    ("faust.transport.producer", "producer flush took"),
)
REPEAT_WINDOW_S = 60.0


class RepeatedLines(logging.Filter):
    """Each of ``REPEATING``'s lines at most once a window; the next one shown says how
    many were held back since the one before it."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._shown_at: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self._kind(record)
        if kind is None:
            return True
        now = self._clock()
        shown_at = self._shown_at.get(kind)
        if shown_at is not None and now - shown_at < self._window_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._shown_at[kind] = now
        held = self._held.pop(kind, 0)
        if held and shown_at is not None:
            record.msg = (f"{record.msg} (and {held} more like it in the last "
                          f"{now - shown_at:.0f}s, not logged)")
        return True

    @staticmethod
    def _kind(record: logging.LogRecord) -> tuple[str, str] | None:
        if not isinstance(record.msg, str):
            return None
        for name, start in REPEATING:
            if record.name == name and record.msg.startswith(start):
                return name, start
        return None


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``dictConfig`` for the worker: our own loggers at ``level``, libraries at info at most.

    Kafka clients at debug print whole fetched batches, customer data included,
    so debug applies to ``acct2crm.*`` only, in both formats.
    """
    libraries = "INFO" if level.upper() == "DEBUG" else level.upper()
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json"
        else {"format": "[%(asctime)s] [%(levelname)s] %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"repeats": {"()": f"{__name__}.RepeatedLines"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["repeats"],
                "stream": "ext://sys.__stderr__",  # not the proxy Faust puts in its place
            }
        },
        # httpx logs every request at info: the CRM's URLs, one line per call
        "loggers": {"acct2crm": {"level": level.upper()}, "httpx": {"level": "WARNING"}},
        "root": {"level": libraries, "handlers": ["default"]},
    }


def change_logged(tenant: str, offset: int | None, code: str | None, action: str) -> None:
    """The change's one debug line: where it was, which code, what was done. Nothing else."""
    CHANGES.debug(
        "change tenant=%s offset=%s code=%s action=%s", tenant, offset, code, action,
        extra={"tenant": tenant, "offset": offset, "code": code, "action": action},
    )
