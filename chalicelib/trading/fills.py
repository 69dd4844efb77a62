"""`GET /fills`: the caller's side of each trade, in Coinbase Exchange's shape."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.core import paging, wire
from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.errors import BadRequest
from chalicelib.platform import db

FILL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "trade_id",
        "product_id",
        "order_id",
        "price",
        "size",
        "fee",
        "side",
        "liquidity",
        "created_at",
        "settled",
    ],
    "properties": {
        **{
            k: {"type": "string"}
            for k in (
                "product_id",
                "order_id",
                "price",
                "size",
                "fee",
                "side",
                "liquidity",
                "created_at",
                "profile_id",
            )
        },
        "trade_id": {"type": "integer"},
        "settled": {"type": "boolean"},
    },
}


def list_fills(
    user_id: str, order_id: str | None, product_id: str | None, page: paging.Page
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    if order_id is None and product_id is None:
        raise BadRequest("order_id or product_id is required")
    if product_id is not None and product_id not in PRODUCTS:
        raise BadRequest("Product not found")
    if order_id is not None:
        try:
            order_id = str(uuid.UUID(order_id))
        except ValueError as exc:
            raise BadRequest("order_id must be a UUID") from exc
    before = paging.int_cursor(page.before, "before")
    after = paging.int_cursor(page.after, "after")
    # Each trade appears once per side the caller took in it: as the maker's order or the
    # taker's (never both: no trade between an account and itself).
    sql = """
        SELECT t.trade_id, t.product_id, o.id, t.price, t.size, t.funds,
               CASE WHEN o.id = t.maker_order_id THEN t.maker_fee ELSE t.taker_fee END,
               o.side, CASE WHEN o.id = t.maker_order_id THEN 'M' ELSE 'T' END, t.created_at
        FROM trades t JOIN orders o ON o.id IN (t.maker_order_id, t.taker_order_id)
        WHERE o.user_id = %(u)s
          AND (%(o)s::uuid IS NULL OR o.id = %(o)s::uuid)
          AND (%(p)s::text IS NULL OR t.product_id = %(p)s)
          AND t.trade_id > %(lo)s AND t.trade_id < %(hi)s
        ORDER BY t.trade_id {order}, t.product_id LIMIT %(n)s"""
    params = {
        "u": user_id,
        "o": order_id,
        "p": product_id,
        "n": page.limit,
        "lo": before if before is not None else 0,
        "hi": after if after is not None else 2**63 - 1,
    }
    with db.connection() as conn:
        rows = conn.execute(
            sql.format(order="ASC" if before is not None else "DESC"), params
        ).fetchall()
    if before is not None:
        rows = rows[::-1]
    items = []
    for trade_id, pid, oid, price, size, funds, fee, side, liquidity, created in rows:
        p = PRODUCTS[pid]
        items.append(
            {
                "trade_id": int(trade_id),
                "product_id": pid,
                "order_id": str(oid),
                "profile_id": user_id,
                "price": wire.price(price, p),
                "size": wire.size(size, p),
                "fee": wire.asset_amount(fee, p.quote.id),
                "usd_volume": wire.asset_amount(funds, "USD") if p.quote.id == "USD" else None,
                "side": side,
                "liquidity": liquidity,
                "created_at": wire.iso(created),
                "settled": True,
            }
        )
    first = str(items[0]["trade_id"]) if items else None
    last = str(items[-1]["trade_id"]) if items else None
    return items, paging.headers(first, last)
