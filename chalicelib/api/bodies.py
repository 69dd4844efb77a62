"""Request bodies: a JSON object, with numbers read exactly (Decimal), never as floats.

A body is refused (400) rather than read in a way a client might not expect: a duplicate key
(parsers disagree on which one wins), text that is not Unicode (lone surrogates, which cannot be
stored or hashed) or holds NUL (Postgres text cannot), and nesting too deep to parse.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from chalice.app import Request

from chalicelib.core.errors import BadRequest

MAX_BODY_BYTES = 16 * 1024


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        raise BadRequest("request body has a duplicate key")
    return body


def text_ok(text: str) -> bool:
    """Text a handler can store, hash and compare: Unicode (no lone surrogate) without NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(value: Any) -> None:
    """Every key and string in `value` is storable text (iterative: nesting is the client's)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not text_ok(item):
                raise BadRequest("request body text must be Unicode without NUL characters")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def json_object(request: Request) -> dict[str, Any]:
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("request body too large")
    if not raw.strip():
        raise BadRequest("request body must be a JSON object")
    try:
        body = json.loads(
            raw,
            parse_float=Decimal,
            parse_constant=_no_constants,
            object_pairs_hook=_object,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("request body is not valid JSON") from exc
    except RecursionError as exc:
        raise BadRequest("request body is nested too deeply") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    _check_text(body)
    return body
