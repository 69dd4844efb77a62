"""Coinbase-style cursor paging: newest first, `limit`, `before` (newer) / `after` (older), and
the next cursors in the CB-BEFORE / CB-AFTER response headers. Never OFFSET."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.errors import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_INT_CURSOR = 2**63 - 1  # ids are Postgres bigints

PARAMETERS: tuple[dict[str, Any], ...] = (
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {"name": "before", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
)


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    before: str | None
    after: str | None


def _ascii_int(value: str, max_digits: int) -> int | None:
    """`value` as an integer if it is at most `max_digits` ASCII digits, else None.

    str.isdigit alone admits other scripts' digits and superscripts, which int() reads
    differently or refuses; a cursor or limit is plain ASCII digits."""
    if not value or len(value) > max_digits or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def parse(query: Mapping[str, str] | None) -> Page:
    query = query or {}
    raw = query.get("limit")
    number = None if raw is None else _ascii_int(raw, 19)
    if raw is None:
        limit = DEFAULT_LIMIT
    elif number is not None and 1 <= number <= MAX_LIMIT:
        limit = number
    else:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    before, after = query.get("before"), query.get("after")
    if before is not None and after is not None:
        raise BadRequest("use before or after, not both")
    return Page(limit, before, after)


def int_cursor(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    number = _ascii_int(value, 19)
    if number is None or number > MAX_INT_CURSOR:
        raise BadRequest(f"{name} must be a cursor from CB-BEFORE or CB-AFTER")
    return number


def headers(first: str | None, last: str | None) -> dict[str, str]:
    out = {}
    if first is not None:
        out["CB-BEFORE"] = first
    if last is not None:
        out["CB-AFTER"] = last
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND


def encode_ts_cursor(created_at: datetime, row_id: str) -> str:
    """A URL-safe cursor for lists ordered by (created_at, id): exact microseconds and the id."""
    return f"{(created_at - _EPOCH) // _MICROSECOND}_{row_id}"


def ts_cursor(value: str, name: str) -> tuple[datetime, str]:
    micros, _, row_id = value.partition("_")
    try:
        number = _ascii_int(micros, 18)
        if number is None or number > _MAX_MICROS:
            raise ValueError(micros)
        return _EPOCH + number * _MICROSECOND, str(uuid.UUID(row_id))
    except ValueError as exc:
        raise BadRequest(f"{name} must be a cursor from CB-BEFORE or CB-AFTER") from exc
