"""Field rules of the reference CRM's customer records (docs/contract.md).

``validate_create`` and ``validate_patch`` take the decoded JSON body and
return the values to store, or raise ``InvalidFields`` listing every field
that is wrong and why (the CRM answers 422 with that list).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acct2crm.errors import Acct2CrmError
from refcrm.codes import stored_code

TAX_CODE = re.compile(r"[0-9]{10}(-[0-9]{3})?")

# writable field -> longest value accepted (characters); None = no length rule
MAX_LENGTH: dict[str, int] = {
    "code": 64,
    "name": 400,
    "tax_code": 14,
    "address": 32_000,
    "phone": 50,
    "email": 255,
    "contact_name": 255,
    "branch_code": 32,
    "external_ref": 255,
}
REQUIRED = ("code", "name")
WRITABLE = tuple(MAX_LENGTH)
READ_ONLY = ("id", "created_at", "updated_at")

Values = dict[str, str | None]


@dataclass(frozen=True)
class FieldError:
    field: str | None
    reason: str

    def as_json(self) -> dict[str, str | None]:
        return {"field": self.field, "reason": self.reason}


class InvalidFields(Acct2CrmError):
    """The body cannot be accepted; ``errors`` says which field and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = errors


def validate_create(body: Any) -> Values:
    """Values of a new record; code and name are required."""
    fields = _fields_of(body)
    errors = [
        FieldError(name, "is required")
        for name in REQUIRED
        if name not in fields
    ]
    values, more = _check(fields)
    errors += more
    if errors:
        raise InvalidFields(errors)
    return values


def validate_patch(body: Any) -> Values:
    """Values to change; any subset of the writable fields (even none)."""
    values, errors = _check(_fields_of(body))
    if errors:
        raise InvalidFields(errors)
    return values


def _fields_of(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise InvalidFields([FieldError(None, "the body must be a JSON object")])
    errors = [
        FieldError(str(name), "is read-only" if name in READ_ONLY else "is not a known field")
        for name in body
        if name not in MAX_LENGTH
    ]
    if errors:
        raise InvalidFields(errors)
    return body


def _check(fields: Mapping[str, Any]) -> tuple[Values, list[FieldError]]:
    values: Values = {}
    errors: list[FieldError] = []
    for name, raw in fields.items():
        try:
            values[name] = _field_value(name, raw)
        except ValueError as exc:
            errors.append(FieldError(name, str(exc)))
    return values, errors


def _field_value(name: str, raw: Any) -> str | None:
    """The value to store for one field; ValueError with the reason when invalid."""
    if raw is None:
        if name in REQUIRED:
            raise ValueError("must not be null")
        return None
    if not isinstance(raw, str):
        raise ValueError(f"must be a string or null, not {_json_type(raw)}")
    value = stored_code(raw) if name == "code" else raw
    if name in REQUIRED and not value.strip():
        raise ValueError("must not be empty")
    limit = MAX_LENGTH[name]
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters, got {len(value)}")
    if name == "tax_code" and TAX_CODE.fullmatch(value) is None:
        raise ValueError("must be 10 digits, or 10 digits, '-', 3 digits")
    if name == "email":
        _check_email(value)
    return value


def _check_email(value: str) -> None:
    if value.count("@") != 1:
        raise ValueError("must contain exactly one '@'")
    local, domain = value.split("@")
    if not local.strip() or not domain.strip():
        raise ValueError("must have text on both sides of '@'")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
