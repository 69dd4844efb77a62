"""What goes into the engine (``Order``) and what comes out (events), plus the constants."""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

BUY = "buy"
SELL = "sell"
LIMIT = "limit"
MARKET = "market"
GTC = "GTC"
IOC = "IOC"
FOK = "FOK"
STP_MODES = ("dc", "co", "cn", "cb")
_STP_SET = frozenset(STP_MODES)
_SIDES = frozenset((BUY, SELL))
TIME_IN_FORCE = (GTC, IOC, FOK)
_TIF_SET = frozenset(TIME_IN_FORCE)


class DuplicateOrderId(ValueError):
    """An order was submitted with the id of an order that is still resting (a caller bug)."""


class Order(NamedTuple):
    """A command to place an order. Build it with :meth:`limit` or :meth:`market`."""

    id: Hashable
    account: Hashable
    side: str  # BUY or SELL
    type: str  # LIMIT or MARKET
    price: int | None = None  # ticks; limit orders only
    size: int | None = None  # lots
    funds: int | None = None  # quote internal units, market buys only; covers notional + fees
    time_in_force: str = GTC
    post_only: bool = False
    stp: str = "dc"

    @classmethod
    def limit(
        cls,
        id: Hashable,
        account: Hashable,
        side: str,
        price: int,
        size: int,
        time_in_force: str = GTC,
        post_only: bool = False,
        stp: str = "dc",
    ) -> Order:
        return cls(id, account, side, LIMIT, price, size, None, time_in_force, post_only, stp)

    @classmethod
    def market(
        cls,
        id: Hashable,
        account: Hashable,
        side: str,
        size: int | None = None,
        funds: int | None = None,
        stp: str = "dc",
    ) -> Order:
        return cls(id, account, side, MARKET, None, size, funds, IOC, False, stp)


class Opened(NamedTuple):
    seq: int
    order_id: Hashable
    account: Hashable
    side: str
    price: int
    size: int  # lots resting now


class Fill(NamedTuple):
    seq: int
    maker_id: Hashable
    taker_id: Hashable
    maker_account: Hashable
    taker_account: Hashable
    price: int  # the maker's price, ticks
    size: int  # lots
    notional: int  # price * size * quote_units_per_tick_lot
    maker_fee: int
    taker_fee: int
    taker_side: str


class Changed(NamedTuple):
    seq: int
    order_id: Hashable
    account: Hashable
    side: str
    price: int | None  # None for a market taker
    old_size: int
    new_size: int
    reason: str  # "self_trade"


class Done(NamedTuple):
    seq: int
    order_id: Hashable
    account: Hashable
    side: str
    price: int | None  # None for a market order
    reason: str  # filled | canceled | self_trade | rejected
    message: str  # detail; for rejected the reject reason
    remaining: int | None  # lots not filled and not otherwise accounted; None: funds-only order
    remaining_funds: int | None  # unspent funds of a funds-capped order, else None


class CancelRejected(NamedTuple):
    order_id: Hashable
    reason: str  # "not found": unknown or already done


Event = Opened | Fill | Changed | Done | CancelRejected
