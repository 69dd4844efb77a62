"""Products as the API shows them (Coinbase Exchange's shape), read from Postgres."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chalicelib.core.errors import NotFound
from chalicelib.platform import db

PRODUCT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "base_currency",
        "quote_currency",
        "base_increment",
        "quote_increment",
        "base_min_size",
        "min_market_funds",
        "status",
        "trading_disabled",
    ],
    "properties": {
        "id": {"type": "string"},
        "base_currency": {"type": "string"},
        "quote_currency": {"type": "string"},
        "base_increment": {"type": "string"},
        "quote_increment": {"type": "string"},
        "base_min_size": {"type": "string"},
        "min_market_funds": {"type": "string"},
        "display_name": {"type": "string"},
        "status": {"type": "string", "enum": ["online", "offline", "delisted"]},
        "status_message": {"type": "string"},
        "trading_disabled": {"type": "boolean"},
        "post_only": {"type": "boolean"},
        "limit_only": {"type": "boolean"},
        "cancel_only": {"type": "boolean"},
        "fx_stablecoin": {"type": "boolean"},
        "auction_mode": {"type": "boolean"},
    },
}

_COLUMNS = """id, base_asset, quote_asset, lot, tick, min_size, min_market_funds, status,
              status_message, trading_disabled, post_only, limit_only, cancel_only"""


def _plain(d: Decimal) -> str:
    return f"{d.normalize():f}"


def _shape(row: tuple[Any, ...]) -> dict[str, Any]:
    (
        pid,
        base,
        quote,
        lot,
        tick,
        min_size,
        min_funds,
        status,
        message,
        disabled,
        post_only,
        limit_only,
        cancel_only,
    ) = row
    return {
        "id": pid,
        "base_currency": base,
        "quote_currency": quote,
        "base_increment": _plain(lot),
        "quote_increment": _plain(tick),
        "base_min_size": _plain(min_size),
        "min_market_funds": _plain(min_funds),
        "display_name": f"{base}/{quote}",
        "status": status,
        "status_message": message,
        "trading_disabled": disabled,
        "post_only": post_only,
        "limit_only": limit_only,
        "cancel_only": cancel_only,
        "fx_stablecoin": False,
        "auction_mode": False,
    }


def list_products() -> list[dict[str, Any]]:
    with db.connection() as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM products ORDER BY id").fetchall()
    return [_shape(r) for r in rows]


def get_product(product_id: str) -> dict[str, Any]:
    with db.connection() as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM products WHERE id = %s", (product_id,)
        ).fetchone()
    if row is None:
        raise NotFound("Product not found")
    return _shape(row)
