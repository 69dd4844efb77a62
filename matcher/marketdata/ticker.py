"""The ticker hash (market_keys: `ticker`): the last trade, the best bid and ask, the 24 h figures
(candles.py) and the sequence they reflect. `last` is the last trade's part, as wire strings;
it also gives the `ticker` feed message its price, size and time.
"""

from __future__ import annotations

from chalicelib.core import wire
from chalicelib.core.market_history import TradeRow
from matcher.batch_sql import Trade
from matcher.marketdata.wire_strings import ProductStrings


class Ticker:
    def __init__(self) -> None:
        self.last: dict[str, str] = {}  # trade_id, price, size, side, time; empty: no trade yet

    def traded(self, trade: Trade, ts: str, strings: ProductStrings) -> None:
        """The last trade of a batch, committed at `ts`."""
        self.last = {
            "trade_id": str(trade.trade_id),
            "price": strings.price_units(trade.price),
            "size": strings.size_units(trade.size),
            "side": trade.maker_side,
            "time": ts,
        }

    def reload(self, latest: TradeRow | None, strings: ProductStrings) -> None:
        """Start over from Postgres' last trade (a full publish); None: the product has none."""
        self.last = {}
        if latest is not None:
            self.last = {
                "trade_id": str(latest.trade_id),
                "price": strings.price_units(latest.price),
                "size": strings.size_units(latest.size),
                "side": latest.maker_side,
                "time": wire.iso(latest.created_at) or "",
            }

    @property
    def last_price(self) -> str:
        return self.last.get("price", "")

    def fields(self, top: dict[str, str], stats: dict[str, str], seq: int) -> dict[str, str | int]:
        """The whole hash."""
        return {**self.last, **top, **stats, "sequence": seq}
