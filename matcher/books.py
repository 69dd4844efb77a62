"""Postgres rows <-> the engine: the rules of a product, an order's row as an engine command, and
rebuilding a product's book from the open orders (the book in memory is only a cache of them).

Units: Postgres keeps internal units (price = quote units per whole base unit, size = base
units, funds = quote units); the engine works in ticks and lots. Conversion is exact: the API
refuses anything off the grid, and `Rules` raises if a stored amount is not on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import psycopg

from chalicelib.core.catalog import PRODUCTS, Product
from chalicelib.core.order_rows import ORDER_COLUMNS, OrderRow, order_row
from matcher.engine import BUY, LIMIT, Order, OrderBook


@dataclass(frozen=True, slots=True)
class Rules:
    """A product's grid and fees as the engine and the settlement need them.

    `tick` and `lot` are the catalog's, as integers computed once (the catalog derives them from
    Decimals on each read): the settlement converts with them for every order row and fill."""

    product: Product
    min_funds: int  # quote units
    tick: int  # quote units per whole base unit, per tick of price (the DB price unit per tick)
    lot: int  # base units per lot

    @classmethod
    def of(cls, product_id: str) -> Rules:
        p = PRODUCTS[product_id]
        min_funds = p.min_market_funds.scaleb(p.quote.exponent)
        if min_funds != min_funds.to_integral_value():
            raise ValueError(f"{product_id}: min market funds is off the quote's unit")
        return cls(p, int(min_funds), p.quote_units_per_tick, p.base_units_per_lot)

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
    def from_row(cls, row: OrderRow, rules: Rules) -> OrderState:
        size_lots = None if row.size is None else rules.lots(int(row.size))
        open_lots = None
        if size_lots is not None:
            open_lots = size_lots - rules.lots(int(row.filled_size)) - rules.lots(int(row.stp_size))
        return cls(
            id=str(row.id),
            user_id=str(row.user_id),
            side=row.side,
            type=row.type,
            price_ticks=None if row.price is None else rules.ticks(int(row.price)),
            size_lots=size_lots,
            funds=None if row.funds is None else int(row.funds),
            time_in_force=row.time_in_force,
            post_only=row.post_only,
            stp=row.stp,
            status=row.status,
            hold_asset=row.hold_asset,
            hold_amount=int(row.hold_amount),
            filled_size=int(row.filled_size),
            executed_value=int(row.executed_value),
            fill_fees=int(row.fill_fees),
            stp_size=int(row.stp_size),
            seq=row.seq,
            accepted_seq=row.accepted_seq,
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
        rows = (
            conn.cursor(row_factory=order_row)
            .execute(
                f"""SELECT {ORDER_COLUMNS} FROM orders
                    WHERE product_id = %s AND status = 'open' ORDER BY seq""",
                (product_id,),
            )
            .fetchall()
        )
    live = {}
    resting = []
    for row in rows:
        o = OrderState.from_row(row, rules)
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
