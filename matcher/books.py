"""Postgres rows <-> the engine: the rules of a product, an order's row as an engine command, and
rebuilding a product's book from the open orders (the book in memory is only a cache of them).

Units: Postgres keeps internal units (price = quote units per whole base unit, size = base
units, funds = quote units); the engine works in ticks and lots. Conversion is exact: the API
refuses anything off the grid, and `Rules` raises if a stored amount is not on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import psycopg

from chalicelib.core.catalog import PRODUCTS, Product
from matcher.engine import BUY, LIMIT, Order, OrderBook

# Every column the matcher reads of an order, in this order (see OrderState.from_row).
ORDER_COLUMNS = """id, user_id, product_id, side, type, price, size, funds, time_in_force,
    post_only, stp, status, hold_asset, hold_amount, filled_size, executed_value, fill_fees,
    stp_size, seq, accepted_seq"""


@dataclass(frozen=True, slots=True)
class Rules:
    """A product's grid and fees as the engine and the settlement need them."""

    product: Product
    min_funds: int  # quote units

    @classmethod
    def of(cls, product_id: str) -> Rules:
        p = PRODUCTS[product_id]
        min_funds = p.min_market_funds.scaleb(p.quote.exponent)
        if min_funds != min_funds.to_integral_value():
            raise ValueError(f"{product_id}: min market funds is off the quote's unit")
        return cls(p, int(min_funds))

    @property
    def tick(self) -> int:
        """Quote units per whole base unit, per tick of price (the DB price unit per tick)."""
        return self.product.quote_units_per_tick

    @property
    def lot(self) -> int:
        """Base units per lot."""
        return self.product.base_units_per_lot

    def engine_rules(self) -> dict[str, Any]:
        p = self.product
        return {
            "quote_units_per_tick_lot": p.quote_units_per_tick_lot,
            "min_size_lots": p.min_size_lots,
            "min_funds": self.min_funds,
            "maker_fee": p.maker_fee,
            "taker_fee": p.taker_fee,
        }

    def new_book(self, seq: int = 0) -> OrderBook:
        return OrderBook(**self.engine_rules(), seq=seq)

    def ticks(self, price_units: int) -> int:
        ticks, rest = divmod(price_units, self.tick)
        if rest:
            raise ValueError(f"price {price_units} is off the {self.product.id} tick")
        return ticks

    def lots(self, size_units: int) -> int:
        lots, rest = divmod(size_units, self.lot)
        if rest:
            raise ValueError(f"size {size_units} is off the {self.product.id} lot")
        return lots

    def live_hold(self, side: str, price_ticks: int | None, open_lots: int) -> int:
        """What a live limit order (or a pending sell) must hold for `open_lots` still open:
        the base it can still sell, or the quote that covers buying them at its limit with the
        worst-case fees (catalog.Product.limit_buy_hold, the engine's buy_hold)."""
        if side == BUY:
            assert price_ticks is not None
            return self.product.limit_buy_hold(price_ticks, open_lots)
        return open_lots * self.lot


@dataclass(slots=True)
class OrderState:
    """The matcher's copy of one order row while it is live (and while a batch writes it)."""

    id: str
    user_id: str
    side: str
    type: str
    price_ticks: int | None
    size_lots: int | None
    funds: int | None
    time_in_force: str
    post_only: bool
    stp: str
    status: str
    hold_asset: str
    hold_amount: int
    filled_size: int  # base units
    executed_value: int  # quote units
    fill_fees: int  # quote units
    stp_size: int  # base units removed by self-trade prevention
    seq: int | None
    accepted_seq: int | None
    cancel_seq: int | None = None
    done_reason: str | None = None
    reject_reason: str | None = None
    open_lots: int | None = None  # lots still open (size orders); None for funds-only orders

    @classmethod
    def from_row(cls, row: tuple[Any, ...], rules: Rules) -> OrderState:
        (
            oid,
            user_id,
            _product,
            side,
            kind,
            price,
            size,
            funds,
            tif,
            post_only,
            stp,
            status,
            hold_asset,
            hold_amount,
            filled,
            value,
            fees,
            stp_size,
            seq,
            accepted_seq,
        ) = row
        size_lots = None if size is None else rules.lots(int(size))
        open_lots = None
        if size_lots is not None:
            open_lots = size_lots - rules.lots(int(filled)) - rules.lots(int(stp_size))
        return cls(
            id=str(oid),
            user_id=str(user_id),
            side=side,
            type=kind,
            price_ticks=None if price is None else rules.ticks(int(price)),
            size_lots=size_lots,
            funds=None if funds is None else int(funds),
            time_in_force=tif,
            post_only=post_only,
            stp=stp,
            status=status,
            hold_asset=hold_asset,
            hold_amount=int(hold_amount),
            filled_size=int(filled),
            executed_value=int(value),
            fill_fees=int(fees),
            stp_size=int(stp_size),
            seq=seq,
            accepted_seq=accepted_seq,
            open_lots=open_lots,
        )

    def copy(self) -> OrderState:
        return replace(self)

    def command(self) -> Order:
        """The engine command that places this order."""
        if self.type == LIMIT:
            assert self.price_ticks is not None and self.size_lots is not None
            return Order.limit(
                self.id,
                self.user_id,
                self.side,
                self.price_ticks,
                self.size_lots,
                time_in_force=self.time_in_force,
                post_only=self.post_only,
                stp=self.stp,
            )
        # A market buy given only a size carries funds too (the API holds the buyer's whole
        # available balance as its budget): the engine stops at whichever runs out first.
        return Order.market(
            self.id,
            self.user_id,
            self.side,
            size=self.size_lots,
            funds=self.funds if self.side == BUY else None,
            stp=self.stp,
        )


@dataclass(slots=True)
class LoadedBook:
    """A product's book rebuilt from Postgres, with the live orders behind it."""

    rules: Rules
    book: OrderBook
    live: dict[str, OrderState]  # resting orders by id
    last_trade_id: int


def load(conn: psycopg.Connection, product_id: str) -> LoadedBook:
    """Rebuild a product's book: open orders by priority, engine seq = product_state.last_seq.

    Read in one REPEATABLE READ transaction so the orders and the fence agree.
    """
    rules = Rules.of(product_id)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        state = conn.execute(
            "SELECT last_seq, last_trade_id FROM product_state WHERE product_id = %s",
            (product_id,),
        ).fetchone()
        if state is None:
            raise LookupError(f"no product_state row for {product_id}")
        rows = conn.execute(
            f"""SELECT {ORDER_COLUMNS} FROM orders
                WHERE product_id = %s AND status = 'open' ORDER BY seq""",
            (product_id,),
        ).fetchall()
    live = {}
    resting = []
    for row in rows:
        o = OrderState.from_row(tuple(row), rules)
        live[o.id] = o
        resting.append(
            {
                "id": o.id,
                "account": o.user_id,
                "side": o.side,
                "price": o.price_ticks,
                "size": o.open_lots,
                "stp": o.stp,
                "priority": o.seq,
            }
        )
    book = OrderBook.restore({"seq": int(state[0]), "orders": resting}, rules.engine_rules())
    return LoadedBook(rules, book, live, int(state[1]))


def decimal_units(value: str | Decimal, exponent: int) -> int:
    """A decimal amount as internal units, refusing anything finer than the unit (tests, tools)."""
    units = Decimal(value).scaleb(exponent)
    if units != units.to_integral_value():
        raise ValueError(f"{value} has more than {exponent} decimal places")
    return int(units)
