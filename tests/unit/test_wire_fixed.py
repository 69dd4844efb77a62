"""wire.fixed (the matcher's integer formatter) prints exactly what wire.price / wire.size do."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core import wire
from chalicelib.core.catalog import PRODUCTS


@given(st.sampled_from(sorted(PRODUCTS)), st.integers(0, 10**12), st.integers(0, 10**12))
def test_fixed_equals_the_decimal_formatting(product_id: str, ticks: int, lots: int) -> None:
    p = PRODUCTS[product_id]
    price = ticks * p.quote_units_per_tick
    size = lots * p.base_units_per_lot
    assert wire.fixed(price, p.quote.exponent, wire.price_places(p)) == wire.price(price, p)
    assert wire.fixed(size, p.base.exponent, wire.size_places(p)) == wire.size(size, p)


def test_fixed_refuses_to_round() -> None:
    try:
        wire.fixed(1, 18, 8)
    except ValueError:
        return
    raise AssertionError("rounded")
