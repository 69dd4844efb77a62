"""1-minute candles of the last 48 h (market_keys: `candles:60`) and the 24 h figures of the
ticker folded from them.

The candles live in memory (rebuilt from Postgres on a full publish); each batch's trades update
the current minute. Once a minute `roll` drops the minutes past the window and folds the closed
minutes of the last 24 h, so that a batch's 24 h figures are that fold plus the current minute.
Nothing here touches Redis: the publisher writes what these methods return.
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.core.market_history import CandleRow
from chalicelib.core.market_keys import CANDLE_WINDOW_S, candle_value
from matcher.batch_sql import Trade
from matcher.marketdata.wire_strings import ProductStrings

DAY_S = 86400


def minute_of(ts: float) -> int:
    return int(ts) // 60 * 60


class Candles:
    """`by_minute`: minute (unix s) -> [low, high, open, close, volume], in internal units."""

    def __init__(self) -> None:
        self.by_minute: dict[int, list[int]] = {}
        self.window_minute = -1  # the minute of the last roll
        self._window: list[int] | None = None  # [open, high, low, volume] of the closed minutes
        self.since = 0  # unix s from which the Redis hash is complete

    def reload(self, rows: Iterable[CandleRow], oldest: int) -> None:
        """Start over from Postgres' candles (a full publish), complete from `oldest`."""
        self.by_minute = {r.time: [r.low, r.high, r.open, r.close, r.volume] for r in rows}
        self.since = oldest
        self.window_minute = -1

    def roll(self, now: float) -> tuple[list[int], int | None]:
        """A new minute: drop candles past the window and fold the closed minutes of the last
        24 h once. Returns (the minutes dropped, the new `since` or None if unchanged) for the
        Redis hash. Complexity: O(minutes kept), once a minute."""
        minute = minute_of(now)
        oldest = minute - CANDLE_WINDOW_S
        stale = [m for m in self.by_minute if m < oldest]
        for m in stale:
            del self.by_minute[m]
        since: int | None = None
        if oldest > self.since:
            self.since = since = oldest
        agg: list[int] | None = None
        for m in sorted(m for m in self.by_minute if minute - DAY_S < m < minute):
            c = self.by_minute[m]
            if agg is None:
                agg = [c[2], c[1], c[0], c[4]]
            else:
                agg[1] = max(agg[1], c[1])
                agg[2] = min(agg[2], c[0])
                agg[3] += c[4]
        self._window = agg
        self.window_minute = minute
        return stale, since

    def add(self, trades: Iterable[Trade], minute: int) -> list[int]:
        """Add trades to the candle of `minute`; returns that candle."""
        candles = self.by_minute
        for t in trades:
            c = candles.get(minute)
            if c is None:
                candles[minute] = [t.price, t.price, t.price, t.price, t.size]
            else:
                if t.price < c[0]:
                    c[0] = t.price
                if t.price > c[1]:
                    c[1] = t.price
                c[3] = t.price
                c[4] += t.size
        return candles[minute]

    def stats(self, strings: ProductStrings, last_price: str) -> dict[str, str]:
        """24 h open/high/low/volume: the folded closed minutes plus the current one; with no
        trade in 24 h, the last price (`last_price`, "" if none) and no volume."""
        agg = self._window
        cur = self.by_minute.get(self.window_minute)
        if cur is not None:
            if agg is None:
                agg = [cur[2], cur[1], cur[0], cur[4]]
            else:
                agg = [agg[0], max(agg[1], cur[1]), min(agg[2], cur[0]), agg[3] + cur[4]]
        if agg is None:
            return {
                "open": last_price,
                "high": last_price,
                "low": last_price,
                "volume": strings.size_units(0),
            }
        return {
            "open": strings.price_units(agg[0]),
            "high": strings.price_units(agg[1]),
            "low": strings.price_units(agg[2]),
            "volume": strings.size_units(agg[3]),
        }

    @staticmethod
    def value(c: list[int], strings: ProductStrings) -> str:
        """A candle as the Redis hash holds it."""
        pu = strings.price_units
        return candle_value(pu(c[0]), pu(c[1]), pu(c[2]), pu(c[3]), strings.size_units(c[4]))
