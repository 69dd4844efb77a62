"""The Redis layout of market data: the one definition its writer
(matcher/marketdata/publisher.py) and its readers (chalicelib/marketdata/market_data.py, the
feed servers) share.

Every key starts `md:<namespace>:<product>:` (namespace: the stage's queue prefix, see `Keys`);
per product (prices and sizes are the wire's decimal strings, times RFC 3339):

| key | type | holds |
|---|---|---|
| `book` | hash | `sequence` and `time` the book keys below reflect |
| `l2:buy`, `l2:sell` | hash | price -> `"<size> <num_orders>"`, every level |
| `l3` | hash | order id -> `"<side> <price> <size> <priority>"`, every resting order |
| `ticker` | hash | last trade `trade_id price size side time`; `bid ask bid_size ask_size`; |
|  |  | 24 h `open high low volume`; `sequence` |
| `candles:60` | hash | minute (unix s) -> `"<low> <high> <open> <close> <volume>"` |
| `candles:since` | string | unix s from which `candles:60` is complete (older: Postgres) |
| `trades` | stream | id `<trade_id>-0`, fields `trade_id seq maker_order_id taker_order_id` |
|  |  | `side price size time`; contiguous from its first entry (capped) |
| `feed` | pub/sub channel | one JSON message per batch (below) |

Every batch's writes go in one MULTI/EXEC, so a reader that reads in a MULTI too sees a book
and its sequence that agree. `sequence` is the product's engine sequence (product_state.last_seq)
after the batch.

A feed message (JSON object) is either a batch:
`{"product_id", "sequence", "prev_sequence", "time", "l2": [[side, price, size], ...],
  "matches": [match, ...], "ticker": {...} | null, "user": [event, ...]}`
where `l2` gives each changed level's new size ("0" = gone), `prev_sequence` is the sequence
of the message before it (a reader whose last sequence differs has missed one and must re-read
the snapshot), `matches` are Coinbase `match` messages and `user` Coinbase full-channel messages
(`received`, `open`, `match`, `change`, `done`) each with the `user_id` it concerns;
or a reset, `{"product_id", "sequence", "reset": true, "time"}`, after a full republish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.platform.config import Settings

TRADES_MAXLEN = 100_000  # entries kept per product stream (approximately: MAXLEN ~)
CANDLE_WINDOW_S = 48 * 3600  # 1-minute candles kept in Redis; older ones come from Postgres


@dataclass(frozen=True, slots=True)
class Keys:
    """The keys of one deployment: `namespace` (the stage's queue prefix) keeps stages, and
    tests running side by side, apart on one Redis."""

    namespace: str

    def _k(self, product_id: str, name: str) -> str:
        return f"md:{self.namespace}:{product_id}:{name}"

    def book(self, product_id: str) -> str:
        return self._k(product_id, "book")

    def l2(self, product_id: str, side: str) -> str:
        return self._k(product_id, f"l2:{side}")

    def l3(self, product_id: str) -> str:
        return self._k(product_id, "l3")

    def ticker(self, product_id: str) -> str:
        return self._k(product_id, "ticker")

    def candles(self, product_id: str) -> str:
        return self._k(product_id, "candles:60")

    def candles_since(self, product_id: str) -> str:
        return self._k(product_id, "candles:since")

    def trades(self, product_id: str) -> str:
        return self._k(product_id, "trades")

    def feed(self, product_id: str) -> str:
        return self._k(product_id, "feed")

    @property
    def feed_pattern(self) -> str:
        return f"md:{self.namespace}:*:feed"

    @staticmethod
    def product_of_channel(channel: str) -> str:
        return channel.split(":")[2]


def keys_for(cfg: Settings) -> Keys:
    return Keys(cfg.queue_prefix)


def trade_entry_id(trade_id: int) -> str:
    return f"{trade_id}-0"


def level_value(size: str, count: int) -> str:
    return f"{size} {count}"


def parse_level(value: str) -> tuple[str, int]:
    size, count = value.split(" ")
    return size, int(count)


def order_value(side: str, price: str, size: str, priority: int) -> str:
    return f"{side} {price} {size} {priority}"


def parse_order(value: str) -> tuple[str, str, str, int]:
    side, price, size, priority = value.split(" ")
    return side, price, size, int(priority)


def candle_value(low: str, high: str, open_: str, close: str, volume: str) -> str:
    return f"{low} {high} {open_} {close} {volume}"


def parse_candle(value: str) -> tuple[str, str, str, str, str]:
    low, high, open_, close, volume = value.split(" ")
    return low, high, open_, close, volume
