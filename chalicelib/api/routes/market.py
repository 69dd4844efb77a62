"""Public market data (Coinbase Exchange shapes): book, ticker, stats, trades, candles."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import json_response, route
from chalicelib.core import paging
from chalicelib.marketdata import candles, market_data

bp = Blueprint(__name__)

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_BOOK = {
    "type": "object",
    "required": ["sequence", "time", "bids", "asks"],
    "properties": {
        "sequence": {"type": "integer"},
        "time": _STR,
        "bids": {"type": "array", "items": {"type": "array"}},
        "asks": {"type": "array", "items": {"type": "array"}},
    },
}
_TICKER = {
    "type": "object",
    "required": ["trade_id", "price", "size", "bid", "ask", "volume", "time", "sequence"],
    "properties": {
        "trade_id": {"type": ["integer", "null"]},
        "price": _NSTR,
        "size": _NSTR,
        "bid": _NSTR,
        "ask": _NSTR,
        "volume": _STR,
        "time": _NSTR,
        "sequence": {"type": "integer"},
    },
}
_STATS = {
    "type": "object",
    "required": ["open", "high", "low", "last", "volume"],
    "properties": {k: _NSTR for k in ("open", "high", "low", "last")} | {"volume": _STR},
}
_TRADE = {
    "type": "object",
    "required": ["time", "trade_id", "price", "size", "side"],
    "properties": {
        "time": _STR,
        "trade_id": {"type": "integer"},
        "price": _STR,
        "size": _STR,
        "side": {"type": "string", "enum": ["buy", "sell"]},
    },
}
_CANDLE = {"type": "array", "minItems": 6, "maxItems": 6}


def _query() -> dict[str, str]:
    return dict(bp.current_request.query_params or {})


def _q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


@route(
    bp,
    "/products/{product_id}/book",
    summary="Order book: level 1 (best), 2 (top 50 aggregated) or 3 (every order)",
    tag="market",
    errors=(400, 404),
    response=_BOOK,
    parameters=(_q("level", {"type": "integer", "enum": [1, 2, 3]}),),
)
def get_book(product_id: str) -> Any:
    market_data.product(product_id)
    return market_data.book(product_id, market_data.parse_level(_query().get("level")))


@route(
    bp,
    "/products/{product_id}/ticker",
    summary="Last trade, best bid and ask, 24 h volume",
    tag="market",
    errors=(404,),
    response=_TICKER,
)
def get_ticker(product_id: str) -> Any:
    return market_data.ticker(product_id)


@route(
    bp,
    "/products/{product_id}/stats",
    summary="24 h open, high, low, last and volume",
    tag="market",
    errors=(404,),
    response=_STATS,
)
def get_stats(product_id: str) -> Any:
    return market_data.stats(product_id)


@route(
    bp,
    "/products/{product_id}/trades",
    summary="Trades, newest first (side is the maker's)",
    tag="market",
    errors=(400, 404),
    response={"type": "array", "items": _TRADE},
    parameters=paging.PARAMETERS,
)
def get_trades(product_id: str) -> Any:
    rows, headers = market_data.trades(product_id, _query())
    return json_response(rows, headers=headers)


@route(
    bp,
    "/products/{product_id}/candles",
    summary="Candles [time, low, high, open, close, volume], newest first, at most 300",
    tag="market",
    errors=(400, 404),
    response={"type": "array", "items": _CANDLE},
    parameters=(
        _q("granularity", {"type": "integer", "enum": list(candles.GRANULARITIES)}),
        _q("start", _STR),
        _q("end", _STR),
    ),
)
def get_candles(product_id: str) -> Any:
    return candles.candles(product_id, _query())
