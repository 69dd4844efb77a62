"""GET /products/{id}/candles: Coinbase's [[time, low, high, open, close, volume]], newest first.

The matcher keeps 1-minute candles of the last 48 h in Redis (market_keys: `candles:60`, complete
from `candles:since`); a range that starts there is rolled up from them, anything older is
computed from the trades in Postgres (market_history.candles). Buckets without trades are left
out, as Coinbase does. Prices and volume are decimal strings (API.md: never JSON numbers);
time is unix seconds, the bucket's start.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.core import market_history, wire
from chalicelib.core.catalog import Product
from chalicelib.core.errors import BadRequest
from chalicelib.core.market_keys import keys_for
from chalicelib.core.money import to_units
from chalicelib.marketdata.market_data import product
from chalicelib.platform import db
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import settings

GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)
MAX_CANDLES = 300
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime (and ISO 8601) holds


def parse_time(value: str, name: str) -> int:
    """ISO 8601 / RFC 3339 (what ccxt and Coinbase's docs send) or unix seconds."""
    text = value.strip()
    try:
        if text.isascii() and text.replace(".", "", 1).isdigit():
            seconds = int(Decimal(text))
            if seconds > MAX_TIME:
                raise ValueError(text)
            return seconds
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, ArithmeticError) as exc:
        raise BadRequest(f"{name} must be an ISO 8601 time or unix seconds") from exc
    if parsed.tzinfo is None:
        raise BadRequest(f"{name} must carry a time zone (e.g. Z)")
    return int(parsed.timestamp())


def parse_range(query: Mapping[str, str], now: float) -> tuple[int, int, int]:
    """(granularity, first bucket, last bucket) from the query, refusing what Coinbase does."""
    raw = query.get("granularity")
    if raw is None:
        granularity = 60
    elif raw.isascii() and raw.isdigit() and len(raw) <= 6 and int(raw) in GRANULARITIES:
        granularity = int(raw)
    else:
        allowed = ", ".join(str(g) for g in GRANULARITIES)
        raise BadRequest(f"granularity must be one of {allowed}")
    start_raw, end_raw = query.get("start"), query.get("end")
    span = (MAX_CANDLES - 1) * granularity
    end = parse_time(end_raw, "end") if end_raw else None
    start = parse_time(start_raw, "start") if start_raw else None
    if start is None and end is None:
        end = int(now)
    if end is None:
        assert start is not None
        end = min(start + span, int(now))
    if start is None:
        start = end - span
    if start > end:
        raise BadRequest("start must not be after end")
    first, last = start // granularity * granularity, end // granularity * granularity
    if (last - first) // granularity + 1 > MAX_CANDLES:
        raise BadRequest(
            f"granularity too small for the requested time range: at most {MAX_CANDLES} candles"
        )
    return granularity, first, last


def candles(product_id: str, query: Mapping[str, str] | None) -> list[list[Any]]:
    p = product(product_id)
    granularity, first, last = parse_range(query or {}, time.time())
    rows = _from_redis(p, granularity, first, last)
    if rows is None:
        with db.connection() as conn:
            found = market_history.candles(conn, p.id, granularity, first, last)
        rows = [
            [
                c.time,
                wire.price(c.low, p),
                wire.price(c.high, p),
                wire.price(c.open, p),
                wire.price(c.close, p),
                wire.size(c.volume, p),
            ]
            for c in found
        ]
    return rows


def _from_redis(p: Product, granularity: int, first: int, last: int) -> list[list[Any]] | None:
    keys = keys_for(settings())
    pipe = redis_client().pipeline(transaction=True)
    pipe.get(keys.candles_since(p.id))
    pipe.hgetall(keys.candles(p.id))
    since_raw, minutes = pipe.execute()
    if since_raw is None or first < int(since_raw):
        return None
    # bucket -> [low, high, open, close, volume, first minute, last minute]; the volume is summed
    # in base units (integers): a Decimal sum would round past the default context's 28 digits.
    qexp, bexp = p.quote.exponent, p.base.exponent
    buckets: dict[int, list[Any]] = {}
    stop = last + granularity
    for raw_minute, raw_value in minutes.items():
        minute = int(raw_minute)
        if not first <= minute < stop:
            continue
        low, high, open_, close, volume = raw_value.decode().split(" ")
        b = minute // granularity * granularity
        c = buckets.get(b)
        if c is None:
            buckets[b] = [
                Decimal(low),
                Decimal(high),
                open_,
                close,
                to_units(Decimal(volume), bexp),
                minute,
                minute,
            ]
            continue
        c[0] = min(c[0], Decimal(low))
        c[1] = max(c[1], Decimal(high))
        if minute < c[5]:
            c[2], c[5] = open_, minute
        if minute > c[6]:
            c[3], c[6] = close, minute
        c[4] += to_units(Decimal(volume), bexp)
    out = []
    for b in sorted(buckets, reverse=True):
        c = buckets[b]
        out.append(
            [
                b,
                wire.price(to_units(c[0], qexp), p),
                wire.price(to_units(c[1], qexp), p),
                c[2],
                c[3],
                wire.size(c[4], p),
            ]
        )
    return out
