"""Faults a test can switch on in the reference CRM (``--fault-injection`` only).

``POST /admin/faults`` sets any of these for the ``/api`` routes, of one
account or of all (accounts.py); a key left out keeps its value, so ``{}``
changes nothing, and all-zero/false restores normal service.
``rate_limit_per_s`` > 0 overrides the CRM's own limit; 0 means "no override"
(back to the limit the CRM was started with, by default none).
``lost_reply_rate`` is an extension: that share of accepted writes is
committed but answered with a 502, as when a reply is lost on the way back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from refcrm.validation import FieldError, InvalidFields

MAX_LATENCY_MS = 120_000


@dataclass(frozen=True)
class Faults:
    down: bool = False
    error_rate: float = 0.0
    latency_ms: int = 0
    rate_limit_per_s: int = 0
    lost_reply_rate: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, body: Any) -> Faults:
        """These faults with the body's keys applied; ``InvalidFields`` when wrong."""
        if not isinstance(body, dict):
            raise InvalidFields([FieldError(None, "the body must be a JSON object")])
        changes: dict[str, Any] = {}
        errors: list[FieldError] = []
        for key, value in body.items():
            try:
                changes[str(key)] = _checked(str(key), value)
            except ValueError as exc:
                errors.append(FieldError(str(key), str(exc)))
        if errors:
            raise InvalidFields(errors)
        return replace(self, **changes)


def _checked(key: str, value: Any) -> bool | float | int:
    if key == "down":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if key in ("error_rate", "lost_reply_rate"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError("must be a number from 0 to 1")
        return float(value)
    if key == "latency_ms":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        if not 0 <= value <= MAX_LATENCY_MS:
            raise ValueError(f"must be from 0 to {MAX_LATENCY_MS}")
        return value
    if key == "rate_limit_per_s":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("must be an integer >= 0 (0 = no override)")
        return value
    raise ValueError("is not a known fault")
