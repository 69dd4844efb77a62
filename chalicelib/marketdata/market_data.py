"""Public market data reads: book, ticker, 24 h stats, trades. Candles are in candles.py.

Redis (written by matcher/marketdata/publisher.py, layout in market_keys.py) answers first;
each read falls back to Postgres, the truth, when Redis does not hold what it needs (never
published, flushed, or trades older than the capped stream). Reads of several keys run in one
MULTI so the book and its sequence agree.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.core import level2, market_history, paging, wire
from chalicelib.core.catalog import PRODUCTS, Product
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.core.market_keys import Keys, keys_for, trade_entry_id
from chalicelib.platform import db
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import settings

BOOK_LEVEL2_DEPTH = 50
SIDES = ("buy", "sell")


def product(product_id: str) -> Product:
    found = PRODUCTS.get(product_id)
    if found is None:
        raise NotFound("NotFound")
    return found


def _keys() -> Keys:
    return keys_for(settings())


def _now_iso() -> str:
    return wire.iso(datetime.fromtimestamp(time.time(), UTC)) or ""


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


# ---------------------------------------------------------------------- book


def parse_level(raw: str | None) -> int:
    if raw is None:
        return 1
    if raw not in ("1", "2", "3"):
        raise BadRequest("level must be 1, 2 or 3")
    return int(raw)


def book(product_id: str, level: int) -> dict[str, Any]:
    """Coinbase's GET /products/{id}/book: {sequence, time, bids, asks} (bids best first)."""
    p = product(product_id)
    found = _book_from_redis(p, level)
    if found is None:
        found = _book_from_postgres(p, level)
    sequence, bids, asks = found
    if level == 1:
        bids, asks = bids[:1], asks[:1]
    elif level == 2:
        bids, asks = bids[:BOOK_LEVEL2_DEPTH], asks[:BOOK_LEVEL2_DEPTH]
    return {"bids": bids, "asks": asks, "sequence": sequence, "time": _now_iso()}


def _sorted_orders(raw: Mapping[Any, Any]) -> dict[str, list[list[Any]]]:
    """Every order, best price first and within a price by time priority. Two stable sorts:
    by priority, then by price (sort(reverse=True) keeps equal items in their order too)."""
    out: dict[str, list[tuple[Any, ...]]] = {"buy": [], "sell": []}
    for oid, value in raw.items():
        side, price, size, priority = _s(value).split(" ")
        out[side].append((int(priority), price, size, _s(oid)))
    result = {}
    for side in SIDES:
        rows = sorted(out[side])
        rows.sort(key=lambda r: level2.price_key(r[1]), reverse=side == "buy")
        result[side] = [[r[1], r[2], r[3]] for r in rows]
    return result


def book_snapshot(redis: Any, keys: Keys, product_id: str, level: int) -> Any:
    """(sequence, bids, asks) as Redis holds them, or None when it holds no book."""
    pipe = redis.pipeline(transaction=True)
    if level != 3:
        level2.queue_read(pipe, keys, product_id)
        sequence, bids, asks = level2.from_replies(pipe.execute())
        return None if sequence is None else (sequence, bids, asks)
    pipe.hget(keys.book(product_id), "sequence")
    pipe.hgetall(keys.l3(product_id))
    seq, raw = pipe.execute()
    if seq is None:
        return None
    orders = _sorted_orders(raw)
    return int(seq), orders["buy"], orders["sell"]


def _book_from_redis(p: Product, level: int) -> Any:
    return book_snapshot(redis_client(), _keys(), p.id, level)


def _book_from_postgres(p: Product, level: int) -> tuple[int, list[list[Any]], list[list[Any]]]:
    """The book as the open orders in Postgres say (what the matcher rebuilds from)."""
    with db.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        state = conn.execute(
            "SELECT last_seq FROM product_state WHERE product_id = %s", (p.id,)
        ).fetchone()
        rows = conn.execute(
            """SELECT id::text, side, price, size - filled_size - stp_size FROM orders
               WHERE product_id = %s AND status = 'open' ORDER BY seq""",
            (p.id,),
        ).fetchall()
    sequence = int(state[0]) if state else 0
    out: dict[str, list[list[Any]]] = {"buy": [], "sell": []}
    if level == 3:
        for oid, side, price, size in rows:
            out[side].append([wire.price(price, p), wire.size(size, p), oid])
        # Stable sorts keep the time priority (ORDER BY seq) within a price.
        level2.best_first(out["buy"], "buy")
        level2.best_first(out["sell"], "sell")
        return sequence, out["buy"], out["sell"]
    agg: dict[str, dict[int, list[int]]] = {"buy": {}, "sell": {}}
    for _oid, side, price, size in rows:
        lv = agg[side].setdefault(int(price), [0, 0])
        lv[0] += int(size)
        lv[1] += 1
    for side in SIDES:
        prices = sorted(agg[side], reverse=side == "buy")
        out[side] = [
            [wire.price(pr, p), wire.size(agg[side][pr][0], p), agg[side][pr][1]] for pr in prices
        ]
    return sequence, out["buy"], out["sell"]


# ---------------------------------------------------------------------- ticker and stats


def ticker(product_id: str) -> dict[str, Any]:
    """Coinbase's GET /products/{id}/ticker, plus the `sequence` it reflects."""
    p = product(product_id)
    raw = _ticker_hash(p)
    trade_id = raw.get("trade_id")
    return {
        "trade_id": int(trade_id) if trade_id else None,
        "price": raw.get("price") or None,
        "size": raw.get("size") or None,
        "bid": raw.get("bid") or None,
        "ask": raw.get("ask") or None,
        "volume": raw.get("volume") or wire.size(0, p),
        "time": raw.get("time") or None,
        "sequence": int(raw.get("sequence") or 0),
    }


def stats(product_id: str) -> dict[str, Any]:
    """Coinbase's GET /products/{id}/stats: 24 h open, high, low, volume and the last price."""
    p = product(product_id)
    raw = _ticker_hash(p)
    last = raw.get("price") or None
    return {
        "open": raw.get("open") or last,
        "high": raw.get("high") or last,
        "low": raw.get("low") or last,
        "last": last,
        "volume": raw.get("volume") or wire.size(0, p),
    }


def _ticker_hash(p: Product) -> dict[str, str]:
    raw = redis_client().hgetall(_keys().ticker(p.id))
    if raw:
        return {_s(k): _s(v) for k, v in raw.items()}
    return _ticker_from_postgres(p)


def _ticker_from_postgres(p: Product) -> dict[str, str]:
    seq, bids, asks = _book_from_postgres(p, 1)
    out: dict[str, str] = {"sequence": str(seq)}
    if bids:
        out["bid"] = bids[0][0]
    if asks:
        out["ask"] = asks[0][0]
    with db.connection() as conn:
        last = market_history.trades_before(conn, p.id, None, 1)
        day = market_history.window_stats(conn, p.id, 86400)
    if last:
        t = last[0]
        out.update(
            trade_id=str(t.trade_id),
            price=wire.price(t.price, p),
            size=wire.size(t.size, p),
            time=wire.iso(t.created_at) or "",
        )
    if day is not None:
        out.update(
            open=wire.price(day.open, p),
            high=wire.price(day.high, p),
            low=wire.price(day.low, p),
            volume=wire.size(day.volume, p),
        )
    return out


# ---------------------------------------------------------------------- trades


def trades(product_id: str, query: Mapping[str, str] | None) -> tuple[list[Any], dict[str, str]]:
    """Coinbase's GET /products/{id}/trades, newest first, paged by trade_id: `after=N` gives
    older trades (id < N), `before=N` newer ones (id > N); the stream in Redis answers when it
    provably holds the whole page, else Postgres."""
    p = product(product_id)
    page = paging.parse(query)
    after = paging.int_cursor(page.after, "after")
    before = paging.int_cursor(page.before, "before")
    if after is not None and after <= 1:
        return [], {}  # trade ids start at 1: nothing is older (and "(0-0" ends no stream range)
    rows = _trades_from_redis(p, page.limit, before, after)
    if rows is None:
        with db.connection() as conn:
            if before is not None:
                found = market_history.trades_after(conn, p.id, before, page.limit)
            else:
                found = market_history.trades_before(conn, p.id, after, page.limit)
        rows = [
            {
                "time": wire.iso(t.created_at),
                "trade_id": t.trade_id,
                "price": wire.price(t.price, p),
                "size": wire.size(t.size, p),
                "side": t.maker_side,
            }
            for t in found
        ]
    first = str(rows[0]["trade_id"]) if rows else None
    last = str(rows[-1]["trade_id"]) if rows else None
    return rows, paging.headers(first, last)


def _trades_from_redis(
    p: Product, limit: int, before: int | None, after: int | None
) -> list[dict[str, Any]] | None:
    key = _keys().trades(p.id)
    pipe = redis_client().pipeline(transaction=True)
    pipe.xrange(key, "-", "+", count=1)  # the oldest entry: the stream is contiguous from it
    if before is not None:
        pipe.xrange(key, f"({trade_entry_id(before)}", "+", count=limit)
    elif after is not None:
        pipe.xrevrange(key, f"({trade_entry_id(after)}", "-", count=limit)
    else:
        pipe.xrevrange(key, "+", "-", count=limit)
    oldest_reply, entries = pipe.execute()
    if not oldest_reply:
        return None
    oldest = int(_s(oldest_reply[0][0]).split("-")[0])
    if before is not None:
        if oldest > before + 1:
            return None  # trades just after the cursor are no longer (or not) in the stream
        entries = entries[::-1]
    elif len(entries) < limit and oldest > 1:
        return None  # the page reaches below what the stream holds
    out = []
    for _id, f in entries:
        fields = {_s(k): _s(v) for k, v in f.items()}
        out.append(
            {
                "time": fields["time"],
                "trade_id": int(fields["trade_id"]),
                "price": fields["price"],
                "size": fields["size"],
                "side": fields["side"],
            }
        )
    return out
