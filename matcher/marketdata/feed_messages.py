"""The feed's messages of a batch (market_keys: `feed`), in Coinbase Exchange's shapes: `match`
for every fill, the full channel's `received`, `open`, `match`, `change`, `done` for the user
channel (each with the `user_id` it concerns), the `ticker` after trades, and the envelope
that carries them with the batch's level-2 changes; or the `reset` of a full publish.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from matcher.batch_sql import Trade
from matcher.engine import BUY, SELL, Changed, Done, Fill, Opened
from matcher.marketdata.wire_strings import ProductStrings
from matcher.settlement import PendingCancelled, Submitted


def event_messages(
    events: Iterable[Any],
    trades: Sequence[Trade],
    done_lots: Sequence[int | None],
    ts: str,
    product_id: str,
    strings: ProductStrings,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(matches, user) of a batch's events. `trades` are the batch's trades, one per `Fill` in
    order; `done_lots` the book diff's lots of each `Done` (book_diff.BookDiff).
    Complexity: O(events)."""
    # Hot loop: locals for what every event touches.
    price, size, quote_amount = strings.prices, strings.sizes, strings.quote_amount
    pid = product_id
    matches: list[dict[str, Any]] = []
    user: list[dict[str, Any]] = []
    match, post = matches.append, user.append
    n_trade = 0
    n_done = 0
    for e in events:
        kind = type(e)
        if kind is Fill:
            t = trades[n_trade]
            n_trade += 1
            m = {
                "type": "match",
                "trade_id": t.trade_id,
                "sequence": e.seq,
                "maker_order_id": t.maker_order_id,
                "taker_order_id": t.taker_order_id,
                "time": ts,
                "product_id": pid,
                "size": size[e.size],
                "price": price[e.price],
                "side": t.maker_side,
            }
            match(m)
            maker = str(e.maker_account)
            taker = str(e.taker_account)
            post(
                {
                    **m,
                    "user_id": maker,
                    "maker_user_id": maker,
                    "liquidity": "M",
                    "fee": quote_amount(e.maker_fee),
                }
            )
            post(
                {
                    **m,
                    "user_id": taker,
                    "taker_user_id": taker,
                    "liquidity": "T",
                    "fee": quote_amount(e.taker_fee),
                }
            )
        elif kind is Opened:
            post(
                {
                    "type": "open",
                    "time": ts,
                    "product_id": pid,
                    "sequence": e.seq,
                    "order_id": str(e.order_id),
                    "price": price[e.price],
                    "remaining_size": size[e.size],
                    "side": e.side,
                    "user_id": str(e.account),
                }
            )
        elif kind is Done:
            lots = done_lots[n_done]
            n_done += 1
            remaining = e.remaining if lots is None else lots
            done: dict[str, Any] = {
                "type": "done",
                "time": ts,
                "product_id": pid,
                "sequence": e.seq,
                "order_id": str(e.order_id),
                "reason": e.reason,
                "side": e.side,
                "user_id": str(e.account),
            }
            if e.price is not None:
                done["price"] = price[e.price]
            if remaining is not None:
                done["remaining_size"] = size[remaining]
            if e.reason == "rejected":
                done["reject_reason"] = e.message
            post(done)
        elif kind is Changed:
            change = {
                "type": "change",
                "reason": "STP",
                "time": ts,
                "sequence": e.seq,
                "order_id": str(e.order_id),
                "side": e.side,
                "product_id": pid,
                "old_size": size[e.old_size],
                "new_size": size[e.new_size],
                "user_id": str(e.account),
            }
            if e.price is not None:
                change["price"] = price[e.price]
            post(change)
        elif kind is Submitted:
            post(received(e, ts, pid, strings))
        elif kind is PendingCancelled:
            post(
                {
                    "type": "done",
                    "time": ts,
                    "product_id": pid,
                    "sequence": e.seq,
                    "order_id": e.order.id,
                    "reason": "canceled",
                    "side": e.order.side,
                    "user_id": e.order.user_id,
                }
            )
    return matches, user


def received(e: Submitted, ts: str, product_id: str, strings: ProductStrings) -> dict[str, Any]:
    """Coinbase's `received`: the order reached the engine."""
    o = e.order
    msg: dict[str, Any] = {
        "type": "received",
        "time": ts,
        "product_id": product_id,
        "sequence": e.seq,
        "order_id": o.id,
        "side": o.side,
        "order_type": o.type,
        "user_id": o.user_id,
    }
    if o.size_lots is not None:
        msg["size"] = strings.size(o.size_lots)
    if o.price_ticks is not None:
        msg["price"] = strings.price(o.price_ticks)
    if o.funds is not None:
        msg["funds"] = strings.quote_amount(o.funds)
    return msg


def ticker(
    seq: int,
    product_id: str,
    last_trade: Trade,
    last: dict[str, str],
    top: dict[str, str],
    stats: dict[str, str],
) -> dict[str, Any]:
    """Coinbase's `ticker` after a batch with trades: `last` is the ticker hash's last trade
    (wire strings), `top` its best bid and ask, `stats` its 24 h figures."""
    return {
        "type": "ticker",
        "sequence": seq,
        "product_id": product_id,
        "price": last["price"],
        "open_24h": stats["open"],
        "volume_24h": stats["volume"],
        "low_24h": stats["low"],
        "high_24h": stats["high"],
        "best_bid": top["bid"],
        "best_bid_size": top["bid_size"],
        "best_ask": top["ask"],
        "best_ask_size": top["ask_size"],
        # Coinbase's ticker side is the taker's (the trades list uses the maker's).
        "side": BUY if last_trade.maker_side == SELL else SELL,
        "time": last["time"],
        "trade_id": last_trade.trade_id,
        "last_size": last["size"],
    }


def batch(
    product_id: str,
    seq: int,
    prev_seq: int,
    ts: str,
    l2: list[list[str]],
    matches: list[dict[str, Any]],
    ticker_message: dict[str, Any] | None,
    user: list[dict[str, Any]],
) -> dict[str, Any]:
    """The message of one batch (market_keys: the feed message)."""
    return {
        "product_id": product_id,
        "sequence": seq,
        "prev_sequence": prev_seq,
        "time": ts,
        "l2": l2,
        "matches": matches,
        "ticker": ticker_message,
        "user": user,
    }


def reset(product_id: str, seq: int, ts: str) -> dict[str, Any]:
    """The message of a full publish: readers reload their snapshot."""
    return {"product_id": product_id, "sequence": seq, "reset": True, "time": ts}
