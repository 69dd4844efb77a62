"""How amounts and times look on the wire: decimal strings and RFC 3339 UTC, exactly.

Integer internal units become fixed-point strings with no rounding: balances and fees with their
asset's full precision, prices and sizes with at least 8 places (as Coinbase prints them) or
more when the product's grid is finer.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from chalicelib.core.catalog import ASSETS, Product
from chalicelib.core.money import format_units


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def _places(step: Decimal) -> int:
    return max(8, -int(step.as_tuple().exponent))


def asset_amount(units: int | Decimal, asset: str) -> str:
    exponent = ASSETS[asset].exponent
    return format_units(int(units), exponent, exponent)


def price(units: int | Decimal, product: Product) -> str:
    """A stored price (quote units per whole base unit) as a decimal string."""
    return format_units(int(units), product.quote.exponent, _places(product.tick))


def size(units: int | Decimal, product: Product) -> str:
    return format_units(int(units), product.base.exponent, _places(product.lot))


def price_places(product: Product) -> int:
    return _places(product.tick)


def size_places(product: Product) -> int:
    return _places(product.lot)
