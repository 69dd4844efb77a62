"""The assets and products the exchange trades ("Money and pairs" in DESIGN.md).

This is the one definition: `exchange migrate` seeds Postgres from it, the queues are named from
it, and the infrastructure reads it. Operators change a live product's status in Postgres.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class Asset:
    id: str
    name: str
    exponent: int  # internal unit = 10**-exponent
    kind: str  # "crypto" | "fiat"
    funding_increment: Decimal  # deposits and withdrawals move whole multiples of this

    @property
    def unit(self) -> Decimal:
        return Decimal(1).scaleb(-self.exponent)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    base: Asset
    quote: Asset
    tick: Decimal  # price step, in quote
    lot: Decimal  # size step, in base
    min_size: Decimal  # in base
    min_market_funds: Decimal  # in quote
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal

    def __post_init__(self) -> None:
        # price x size must be exact in the quote's internal unit, or a trade's value would round.
        per_tick_lot = self.tick * self.lot / self.quote.unit
        if per_tick_lot != per_tick_lot.to_integral_value() or per_tick_lot < 1:
            raise ValueError(f"{self.id}: tick x lot is not a whole number of quote units")
        if self.min_size % self.lot != 0:
            raise ValueError(f"{self.id}: min size is off the lot grid")

    @property
    def quote_units_per_tick_lot(self) -> int:
        """Quote internal units that one tick of price times one lot of size is worth."""
        return int(self.tick * self.lot / self.quote.unit)

    @property
    def base_units_per_lot(self) -> int:
        return int(self.lot / self.base.unit)

    @property
    def quote_units_per_tick(self) -> int:
        """Quote internal units per whole base unit, for one tick of price (DB price unit)."""
        return int(self.tick / self.quote.unit)

    @property
    def min_size_lots(self) -> int:
        return int(self.min_size / self.lot)

    def limit_buy_hold(self, price_ticks: int, size_lots: int) -> int:
        """Quote units a limit buy holds: enough for its notional and every fee it can pay.

        Fees round up per fill and a fill is at least one lot, so the worst case is one fill per
        lot at the limit price at the higher fee rate. The engine (matcher/engine, which cannot
        import this module) states the same rule as `OrderBook.buy_hold`; a test holds them equal.
        """
        per_lot = price_ticks * self.quote_units_per_tick_lot
        rate = max(self.maker_fee, self.taker_fee)
        return size_lots * (per_lot + -(-per_lot * rate.numerator // rate.denominator))

    @property
    def maker_fee(self) -> Fraction:
        return Fraction(self.maker_fee_rate)

    @property
    def taker_fee(self) -> Fraction:
        return Fraction(self.taker_fee_rate)


BTC = Asset("BTC", "Bitcoin", 8, "crypto", Decimal("0.00000001"))
ETH = Asset("ETH", "Ether", 18, "crypto", Decimal("0.000000001"))  # 1 gwei
USD = Asset("USD", "United States Dollar", 8, "fiat", Decimal("0.01"))

ASSETS: dict[str, Asset] = {a.id: a for a in (BTC, ETH, USD)}

_MAKER = Decimal("0.001")
_TAKER = Decimal("0.002")

PRODUCTS: dict[str, Product] = {
    p.id: p
    for p in (
        Product(
            "BTC-USD",
            BTC,
            USD,
            Decimal("0.01"),
            Decimal("0.000001"),
            Decimal("0.0001"),
            Decimal("1"),
            _MAKER,
            _TAKER,
        ),
        Product(
            "ETH-USD",
            ETH,
            USD,
            Decimal("0.01"),
            Decimal("0.0001"),
            Decimal("0.001"),
            Decimal("1"),
            _MAKER,
            _TAKER,
        ),
        Product(
            "ETH-BTC",
            ETH,
            BTC,
            Decimal("0.00001"),
            Decimal("0.001"),
            Decimal("0.01"),
            Decimal("0.0001"),
            _MAKER,
            _TAKER,
        ),
    )
}

# Fees land in one account per product, each a system user that never logs in. One account
# for every product would be one balance row per asset that each product's settlement locks
# until it commits: the products' matchers would queue behind each other on it. Operators
# read the fee revenue per product; the conservation check counts every account.
_FEE_NAMESPACE = uuid.UUID("7c1f3a52-0d4e-4b8e-9a57-6f0e2c1dfee0")
FEE_ACCOUNTS: dict[str, str] = {p: str(uuid.uuid5(_FEE_NAMESPACE, p)) for p in PRODUCTS}


def fee_account(product_id: str) -> str:
    """The system user whose balances receive a product's fees."""
    return FEE_ACCOUNTS[product_id]


def fee_account_email(product_id: str) -> str:
    return f"fees-{product_id.lower()}@exchange.internal"
