"""The level-2 book snapshot: a product's price levels as Redis holds them (market_keys: `book`,
`l2:buy`, `l2:sell`), best first, and the feed's `snapshot` message made from them.

The one definition every reader shares: the REST book (chalicelib/marketdata/market_data.py),
the API Gateway feed (chalicelib/marketdata/ws.py) and the local feed server (feed/server.py),
whose follower (feed_protocol.L2Follower) shapes its own book with `snapshot_message` too.
A level is `[price, size, num_orders]` (decimal strings, then an int); bids come highest first,
asks lowest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from chalicelib.core.market_keys import Keys, parse_level

Row = TypeVar("Row", bound=Sequence[Any])


def price_key(price: str) -> tuple[int, str]:
    """Sort key of a product's price strings: they all carry the same number of decimals, so
    (length, text) orders them as numbers, without parsing each one."""
    return (len(price), price)


def best_first(rows: list[Row], side: str) -> list[Row]:
    """Sorts rows whose first item is a price in place, best price first, and returns them.
    The sort is stable: rows of one price keep their order."""
    rows.sort(key=lambda r: price_key(r[0]), reverse=side == "buy")
    return rows


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def levels(raw: Mapping[Any, Any], side: str) -> list[list[Any]]:
    """One side's `l2` hash (price -> `"<size> <num_orders>"`) as levels, best first."""
    rows: list[list[Any]] = []
    for price, value in raw.items():
        size, count = parse_level(_text(value))
        rows.append([_text(price), size, count])
    return best_first(rows, side)


def queue_read(pipe: Any, keys: Keys, product_id: str) -> None:
    """Queues the three reads of a snapshot on a pipeline (MULTI, so the levels and their
    sequence are of one instant); `from_replies` reads what it returns. Works on a blocking
    or an asyncio pipeline alike."""
    pipe.hget(keys.book(product_id), "sequence")
    pipe.hgetall(keys.l2(product_id, "buy"))
    pipe.hgetall(keys.l2(product_id, "sell"))


def from_replies(
    replies: Sequence[Any],
) -> tuple[int | None, list[list[Any]], list[list[Any]]]:
    """(sequence, bids, asks) from the replies of `queue_read`; sequence None: Redis holds no
    book (never published, or flushed)."""
    seq, bids, asks = replies[:3]
    return (
        None if seq is None else int(seq),
        levels(bids, "buy"),
        levels(asks, "sell"),
    )


def snapshot_message(
    product_id: str, sequence: int, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]]
) -> dict[str, Any]:
    """The feed's level2 `snapshot` (Coinbase's shape: `[price, size]` pairs) from levels or
    (price, size) pairs, already best first."""
    return {
        "type": "snapshot",
        "product_id": product_id,
        "sequence": sequence,
        "bids": [[b[0], b[1]] for b in bids],
        "asks": [[a[0], a[1]] for a in asks],
    }
