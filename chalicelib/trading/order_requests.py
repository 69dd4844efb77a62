"""Parsing and validating a `POST /orders` body against its product's rules.

Everything is checked before any money moves: types, the tick/lot grid, minimum size and funds,
the price band, and the product's trading mode. Nothing is rounded; anything off the grid is a
400 with the message Coinbase Exchange clients expect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalicelib.core.catalog import PRODUCTS, Product
from chalicelib.core.errors import BadRequest
from chalicelib.core.money import MoneyError, parse_decimal, steps

SIDES = ("buy", "sell")
TYPES = ("limit", "market")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
STP_MODES = ("dc", "co", "cn", "cb")
# Far beyond any real order, small enough that no product of them can overflow anything.
MAX_TICKS = 10**15
MAX_LOTS = 10**15
# A limit price further than this factor from the last trade is refused as a likely typo.
PRICE_BAND_FACTOR = 10

KNOWN_FIELDS = frozenset(
    {
        "client_oid",
        "type",
        "side",
        "product_id",
        "price",
        "size",
        "funds",
        "time_in_force",
        "post_only",
        "stp",
        "cancel_after",
        "profile_id",
    }
)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    product: Product
    client_oid: str | None
    side: str
    type: str
    price_ticks: int | None  # limit orders
    size_lots: int | None  # limit orders; market orders by size
    funds: int | None  # market buys by funds, in quote units
    time_in_force: str
    post_only: bool
    stp: str

    @property
    def price_units(self) -> int | None:
        """The price as stored: quote units per whole base unit."""
        return (
            None
            if self.price_ticks is None
            else self.price_ticks * self.product.quote_units_per_tick
        )

    @property
    def size_units(self) -> int | None:
        return None if self.size_lots is None else self.size_lots * self.product.base_units_per_lot


def _choice(body: dict[str, Any], name: str, options: tuple[str, ...], default: str | None) -> str:
    value = body.get(name, default)
    if value is None:
        raise BadRequest(f"{name} is required")
    if value not in options:
        raise BadRequest(f"{name} must be one of {', '.join(options)}")
    return str(value)


def _amount(body: dict[str, Any], name: str) -> Decimal | None:
    """An amount or price: a decimal string (API.md), never a JSON number."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a decimal string")
    try:
        return parse_decimal(value, name)
    except MoneyError as exc:
        raise BadRequest(str(exc)) from exc


def _on_grid(amount: Decimal, step: Decimal, too_precise: str) -> int:
    try:
        return steps(amount, step, too_precise)
    except MoneyError as exc:
        raise BadRequest(str(exc)) from exc


def parse(body: dict[str, Any]) -> OrderRequest:
    unknown = set(body) - KNOWN_FIELDS
    if unknown:
        raise BadRequest(f"unknown field: {sorted(unknown)[0]}")
    product_id = body.get("product_id")
    if not isinstance(product_id, str) or product_id not in PRODUCTS:
        raise BadRequest("Product not found")
    product = PRODUCTS[product_id]

    client_oid = body.get("client_oid")
    if client_oid is not None:
        try:
            client_oid = str(uuid.UUID(str(client_oid)))
        except ValueError as exc:
            raise BadRequest("client_oid must be a UUID") from exc
    side = _choice(body, "side", SIDES, None)
    kind = _choice(body, "type", TYPES, "limit")
    stp = _choice(body, "stp", STP_MODES, "dc")
    post_only = body.get("post_only", False)
    if not isinstance(post_only, bool):
        raise BadRequest("post_only must be true or false")
    if body.get("cancel_after") is not None:
        raise BadRequest("time_in_force must be one of GTC, IOC, FOK")

    price, size, funds = _amount(body, "price"), _amount(body, "size"), _amount(body, "funds")
    size_lots = None
    if size is not None:
        size_lots = _on_grid(size, product.lot, "size too precise")
        if size < product.min_size:
            raise BadRequest(f"size is too small. Minimum size is {product.min_size}")
        if size_lots > MAX_LOTS:
            raise BadRequest("size is too large")

    if kind == "limit":
        if price is None or size is None:
            raise BadRequest("price and size are required for limit orders")
        if funds is not None:
            raise BadRequest("funds is not allowed for limit orders")
        price_ticks = _on_grid(price, product.tick, "price too precise")
        if price_ticks > MAX_TICKS:
            raise BadRequest("price is too large")
        tif = _choice(body, "time_in_force", TIME_IN_FORCE, "GTC")
        if post_only and tif != "GTC":
            raise BadRequest("post_only is only allowed with time_in_force GTC")
        return OrderRequest(
            product, client_oid, side, kind, price_ticks, size_lots, None, tif, post_only, stp
        )

    # market
    if price is not None:
        raise BadRequest("price is not allowed for market orders")
    if post_only:
        raise BadRequest("post_only is not allowed for market orders")
    if body.get("time_in_force", "IOC") != "IOC":
        raise BadRequest("market orders are IOC")
    funds_units = None
    if funds is not None:
        if side == "sell":
            raise BadRequest("funds is only allowed for market buys")
        _on_grid(funds, product.tick, "funds too precise")
        if funds < product.min_market_funds:
            raise BadRequest(f"funds is too small. Minimum funds is {product.min_market_funds}")
        funds_units = steps(funds, product.quote.unit)
        if funds_units > MAX_TICKS * product.quote_units_per_tick:
            raise BadRequest("funds is too large")
    if size is None and funds is None:
        raise BadRequest("size or funds is required for market orders")
    return OrderRequest(
        product, client_oid, side, kind, None, size_lots, funds_units, "IOC", False, stp
    )


def check_band(request: OrderRequest, last_price_ticks: int | None) -> None:
    """Refuse a limit price wildly away from the last trade (fat fingers), if there is one."""
    if request.price_ticks is None or last_price_ticks is None:
        return
    low = max(1, last_price_ticks // PRICE_BAND_FACTOR)
    high = last_price_ticks * PRICE_BAND_FACTOR
    if not low <= request.price_ticks <= high:
        tick = request.product.tick
        raise BadRequest(f"price is outside the allowed band ({low * tick} to {high * tick})")
