"""A product's prices and sizes as market data prints them: decimal strings of the wire
(chalicelib/core/wire.py), from the engine's ticks and lots or from internal units.

A book reuses few prices and sizes, so the strings of ticks and lots are cached: formatting
them is a noticeable part of a publish (benchmarks/market_data.py, sampled).
"""

from __future__ import annotations

from chalicelib.core import wire
from chalicelib.core.catalog import Product
from chalicelib.core.money import format_units


class WireStrings(dict[int, str]):
    """Wire strings of counts of one unit (ticks, lots), each formatted on first use."""

    MAX = 100_000  # kept before starting over

    def __init__(self, unit: int, exponent: int, places: int) -> None:
        super().__init__()
        self.unit, self.exponent, self.places = unit, exponent, places

    def __missing__(self, count: int) -> str:
        if len(self) > self.MAX:
            self.clear()
        s = self[count] = format_units(count * self.unit, self.exponent, self.places)
        return s


class ProductStrings:
    """One product's formatting. `prices[ticks]` and `sizes[lots]` are the cached strings."""

    def __init__(self, product: Product) -> None:
        self.product = product
        self._qexp, self._bexp = product.quote.exponent, product.base.exponent
        self._pplaces, self._splaces = wire.price_places(product), wire.size_places(product)
        self.prices = WireStrings(product.quote_units_per_tick, self._qexp, self._pplaces)
        self.sizes = WireStrings(product.base_units_per_lot, self._bexp, self._splaces)

    def price(self, ticks: int) -> str:
        return self.prices[ticks]

    def size(self, lots: int) -> str:
        return self.sizes[lots]

    def price_units(self, units: int) -> str:
        return format_units(units, self._qexp, self._pplaces)

    def size_units(self, units: int) -> str:
        return format_units(units, self._bexp, self._splaces)

    def quote_amount(self, units: int) -> str:
        """A fee or funds in the quote asset, with its full precision (wire.asset_amount)."""
        return format_units(units, self._qexp, self._qexp)
