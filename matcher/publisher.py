"""Market data to Redis after a batch commits: one pipeline per batch.

What is written (a later issue builds full market data on it):
- `trades:<product>`: a Stream capped near TRADES_MAXLEN, one entry per trade, decimal strings.
- `book:<product>:top`: a hash of best bid/ask (price, size, order count) and the seq it is at.

Redis is derived data (DESIGN: "Redis can be lost and rebuilt"): a failure to publish is
logged by the caller and never undoes or blocks a committed batch.
"""

from __future__ import annotations

from typing import Any

from chalicelib import wire
from matcher.books import Rules
from matcher.engine import BUY, SELL, OrderBook
from matcher.settlement import Trade

TRADES_MAXLEN = 100_000


def trades_key(product_id: str) -> str:
    return f"trades:{product_id}"


def top_key(product_id: str) -> str:
    return f"book:{product_id}:top"


def top_of_book(book: OrderBook, rules: Rules) -> dict[str, str]:
    p = rules.product
    top: dict[str, str] = {"seq": str(book.seq)}
    for name, side in (("bid", BUY), ("ask", SELL)):
        level = book.depth(side, 1)
        if level:
            price, size, count = level[0]
            top[name] = wire.price(price * rules.tick, p)
            top[f"{name}_size"] = wire.size(size * rules.lot, p)
            top[f"{name}_orders"] = str(count)
        else:
            top[name] = top[f"{name}_size"] = top[f"{name}_orders"] = ""
    return top


def publish(redis: Any, rules: Rules, book: OrderBook, trades: list[Trade]) -> None:
    p = rules.product
    pipe = redis.pipeline(transaction=False)
    for t in trades:
        pipe.xadd(
            trades_key(p.id),
            {
                "trade_id": t.trade_id,
                "seq": t.seq,
                "maker_order_id": t.maker_order_id,
                "taker_order_id": t.taker_order_id,
                "side": t.maker_side,  # Coinbase's trade side is the maker's
                "price": wire.price(t.price, p),
                "size": wire.size(t.size, p),
            },
            maxlen=TRADES_MAXLEN,
            approximate=True,
        )
    pipe.hset(top_key(p.id), mapping=top_of_book(book, rules))
    pipe.execute()
