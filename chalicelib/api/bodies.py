"""Request bodies: a JSON object, with numbers read exactly (Decimal), never as floats."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from chalice.app import Request

from chalicelib.core.errors import BadRequest

MAX_BODY_BYTES = 16 * 1024


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def json_object(request: Request) -> dict[str, Any]:
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("request body too large")
    if not raw.strip():
        raise BadRequest("request body must be a JSON object")
    try:
        body = json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body
