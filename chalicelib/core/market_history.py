"""Market data from Postgres, the truth behind Redis: trades by cursor and candles computed from
trades. The matcher reads it to rebuild Redis; the REST reads fall back to it for what Redis no
longer (or not yet) holds. Amounts are internal units here; formatting is the caller's.

Queries use the primary key (product_id, trade_id) and the index trades_product_time
(product_id, created_at) of migration 0003.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import psycopg


class TradeRow(NamedTuple):
    trade_id: int
    seq: int
    maker_order_id: str
    taker_order_id: str
    maker_side: str
    price: int
    size: int
    created_at: datetime


class CandleRow(NamedTuple):
    time: int  # bucket start, unix seconds
    low: int
    high: int
    open: int
    close: int
    volume: int


_TRADE_COLUMNS = """trade_id, seq, maker_order_id::text, taker_order_id::text, maker_side,
    price, size, created_at"""


def _trade(row: Any) -> TradeRow:
    return TradeRow(
        int(row[0]), int(row[1]), row[2], row[3], row[4], int(row[5]), int(row[6]), row[7]
    )


def trades_before(
    conn: psycopg.Connection, product_id: str, below: int | None, limit: int
) -> list[TradeRow]:
    """The newest `limit` trades with trade_id < `below` (all when None), newest first."""
    rows = conn.execute(
        f"""SELECT {_TRADE_COLUMNS} FROM trades
            WHERE product_id = %s AND trade_id < %s ORDER BY trade_id DESC LIMIT %s""",
        (product_id, below if below is not None else 2**63 - 1, limit),
    ).fetchall()
    return [_trade(r) for r in rows]


def trades_after(
    conn: psycopg.Connection, product_id: str, above: int, limit: int
) -> list[TradeRow]:
    """The oldest `limit` trades with trade_id > `above`, newest first (a CB-BEFORE page)."""
    rows = conn.execute(
        f"""SELECT {_TRADE_COLUMNS} FROM trades
            WHERE product_id = %s AND trade_id > %s ORDER BY trade_id LIMIT %s""",
        (product_id, above, limit),
    ).fetchall()
    return [_trade(r) for r in reversed(rows)]


def candles(
    conn: psycopg.Connection, product_id: str, granularity: int, start: int, end: int
) -> list[CandleRow]:
    """Candles of `granularity` seconds whose bucket starts in [start, end] (unix seconds,
    multiples of the granularity), newest first; buckets without trades are absent, as
    Coinbase leaves them out. Open and close are the first and last trade by trade_id."""
    rows = conn.execute(
        """SELECT (floor(extract(epoch FROM created_at) / %(g)s) * %(g)s)::bigint AS bucket,
                  min(price), max(price),
                  (array_agg(price ORDER BY trade_id))[1],
                  (array_agg(price ORDER BY trade_id DESC))[1],
                  sum(size)
           FROM trades
           WHERE product_id = %(p)s AND created_at >= to_timestamp(%(start)s)
             AND created_at < to_timestamp(%(stop)s)
           GROUP BY bucket ORDER BY bucket DESC""",
        {"g": granularity, "p": product_id, "start": start, "stop": end + granularity},
    ).fetchall()
    return [CandleRow(*(int(v) for v in r)) for r in rows]


class Window(NamedTuple):
    open: int
    high: int
    low: int
    volume: int


def window_stats(conn: psycopg.Connection, product_id: str, seconds: int) -> Window | None:
    """Open, high, low and volume of the trades of the last `seconds`; None if there were none."""
    row = conn.execute(
        """SELECT (array_agg(price ORDER BY trade_id))[1], max(price), min(price), sum(size)
           FROM trades
           WHERE product_id = %s AND created_at > now() - make_interval(secs => %s)""",
        (product_id, seconds),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return Window(*(int(v) for v in row))
