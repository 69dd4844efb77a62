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


def parse(query: Mapping[str, str] | None) -> Page:
    query = query or {}
    raw = query.get("limit")
    if raw is None:
        limit = DEFAULT_LIMIT
    elif raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT:
        limit = int(raw)
    else:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    before, after = query.get("before"), query.get("after")
    if before is not None and after is not None:
        raise BadRequest("use before or after, not both")
    return Page(limit, before, after)


def int_cursor(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise BadRequest(f"{name} must be a cursor from CB-BEFORE or CB-AFTER")
    return int(value)


def headers(first: str | None, last: str | None) -> dict[str, str]:
    out = {}
    if first is not None:
        out["CB-BEFORE"] = first
    if last is not None:
        out["CB-AFTER"] = last
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode_ts_cursor(created_at: datetime, row_id: str) -> str:
    """A URL-safe cursor for lists ordered by (created_at, id): exact microseconds and the id."""
    return f"{(created_at - _EPOCH) // _MICROSECOND}_{row_id}"


def ts_cursor(value: str, name: str) -> tuple[datetime, str]:
    micros, _, row_id = value.partition("_")
    try:
        if not micros.isdigit() or len(micros) > 18:
            raise ValueError(micros)
        return _EPOCH + int(micros) * _MICROSECOND, str(uuid.UUID(row_id))
    except ValueError as exc:
        raise BadRequest(f"{name} must be a cursor from CB-BEFORE or CB-AFTER") from exc
