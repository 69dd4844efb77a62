from decimal import Decimal

import pytest

from chalicelib.core.catalog import ASSETS, BTC, PRODUCTS, USD, Product


def test_design_table_products() -> None:
    rows = {p.id: (p.tick, p.lot, p.min_size, p.tick * p.lot) for p in PRODUCTS.values()}
    assert rows == {
        "BTC-USD": (Decimal("0.01"), Decimal("0.000001"), Decimal("0.0001"), Decimal("1E-8")),
        "ETH-USD": (Decimal("0.01"), Decimal("0.0001"), Decimal("0.001"), Decimal("1E-6")),
        "ETH-BTC": (Decimal("0.00001"), Decimal("0.001"), Decimal("0.01"), Decimal("1E-8")),
    }
    assert {a: ASSETS[a].exponent for a in ASSETS} == {"BTC": 8, "ETH": 18, "USD": 8}


def test_tick_times_lot_is_whole_quote_units() -> None:
    assert {p.id: p.quote_units_per_tick_lot for p in PRODUCTS.values()} == {
        "BTC-USD": 1,
        "ETH-USD": 100,
        "ETH-BTC": 1,
    }
    for p in PRODUCTS.values():
        assert p.maker_fee_rate == Decimal("0.001") and p.taker_fee_rate == Decimal("0.002")


def test_a_product_whose_trades_could_not_be_exact_is_refused() -> None:
    with pytest.raises(ValueError, match="tick x lot"):
        Product(
            "BTC-USD",
            BTC,
            USD,
            Decimal("0.01"),
            Decimal("0.0000001"),
            Decimal("0.0001"),
            Decimal("1"),
            Decimal("0.001"),
            Decimal("0.002"),
        )


def test_limit_buy_hold_is_the_engines_rule() -> None:
    import random

    from matcher.engine import OrderBook

    rng = random.Random(7)
    for product in PRODUCTS.values():
        book = OrderBook(
            product.quote_units_per_tick_lot,
            product.min_size_lots,
            product.maker_fee,
            product.taker_fee,
        )
        for _ in range(2000):
            price, size = rng.randint(1, 10**9), rng.randint(1, 10**6)
            assert product.limit_buy_hold(price, size) == book.buy_hold(price, size)
    assert PRODUCTS["BTC-USD"].limit_buy_hold(1001, 2) == 2 * (1001 + 3)
