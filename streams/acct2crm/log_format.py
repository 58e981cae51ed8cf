"""How the worker logs: plain text (default) or one JSON object a line (``log_format = "json"``).

One line per change is logged at debug by ``change_logged``: tenant, offset,
code and action only. The customer's name, phone, email and the CRM token
are never handed to a logger, at any level: a result's reason can quote a
value the CRM rejected, so the change line never carries the reason.
"""

from __future__ import annotations

import json
import logging
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
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
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
