"""Bodies and answers shared by the routes: a decoded JSON body, a 422/400 answer."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from refcrm.validation import FieldError, InvalidFields


async def json_body(request: Request) -> Any:
    """The decoded body; ``InvalidFields`` (answered 400) when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidFields([FieldError(None, f"malformed JSON: {exc}")]) from exc


def invalid_body(errors: list[FieldError]) -> dict[str, Any]:
    """``{"detail", "errors": [{field, reason}]}``: every bad field at once."""
    detail = "; ".join(f"{e.field or 'body'}: {e.reason}" for e in errors)
    return {"detail": detail, "errors": [e.as_json() for e in errors]}


def invalid(errors: list[FieldError], status: int = 422) -> JSONResponse:
    return JSONResponse(invalid_body(errors), status_code=status)
