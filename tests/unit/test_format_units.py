"""money.format_units (the one formatter of internal units) prints exactly what Decimal's own
fixed-point formatting prints, for every product's prices and sizes as wire.price / wire.size
give them."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core import wire
from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.money import format_units


def _decimal_reference(units: int, exponent: int, places: int) -> str:
    with localcontext(prec=100):
        return f"{Decimal(units).scaleb(-exponent).quantize(Decimal(1).scaleb(-places)):f}"


@given(st.sampled_from(sorted(PRODUCTS)), st.integers(0, 10**12), st.integers(0, 10**12))
def test_format_units_equals_the_decimal_formatting(product_id: str, ticks: int, lots: int) -> None:
    p = PRODUCTS[product_id]
    price = ticks * p.quote_units_per_tick
    size = lots * p.base_units_per_lot
    pplaces, splaces = wire.price_places(p), wire.size_places(p)
    assert format_units(price, p.quote.exponent, pplaces) == wire.price(price, p)
    assert wire.price(price, p) == _decimal_reference(price, p.quote.exponent, pplaces)
    assert format_units(size, p.base.exponent, splaces) == wire.size(size, p)
    assert wire.size(size, p) == _decimal_reference(size, p.base.exponent, splaces)


@given(st.integers(-(10**30), 10**30), st.integers(0, 18))
def test_asset_precision_equals_the_decimal_formatting(units: int, exponent: int) -> None:
    assert format_units(units, exponent, exponent) == _decimal_reference(units, exponent, exponent)


def test_format_units_refuses_to_round() -> None:
    with pytest.raises(ValueError):
        format_units(1, 18, 8)
