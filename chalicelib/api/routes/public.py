"""Public routes: health, time, products, the OpenAPI document."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from chalice import Blueprint

from chalicelib.api import health, openapi
from chalicelib.api.http import json_response, route
from chalicelib.marketdata import currencies, products
from chalicelib.platform import db

bp = Blueprint(__name__)


@route(
    bp,
    "/health",
    summary="Whether the API's dependencies are up (503 when degraded)",
    tag="system",
    errors=(503,),
    response={
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]}},
    },
)
def get_health() -> Any:
    healthy, body = health.public_status()
    return json_response(body, 200 if healthy else 503)


@route(
    bp,
    "/time",
    summary="Server time",
    tag="system",
    response={
        "type": "object",
        "required": ["iso", "epoch"],
        "properties": {"iso": {"type": "string"}, "epoch": {"type": "number"}},
    },
)
def get_time() -> Any:
    now = time.time()
    iso = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    return {"iso": iso.replace("+00:00", "Z"), "epoch": round(now, 3)}


@route(
    bp,
    "/products",
    summary="List products",
    tag="market",
    response={"type": "array", "items": products.PRODUCT_SCHEMA},
)
def list_products() -> Any:
    return products.list_products()


@route(
    bp,
    "/products/{product_id}",
    summary="One product",
    tag="market",
    errors=(404,),
    response=products.PRODUCT_SCHEMA,
)
def get_product(product_id: str) -> Any:
    return products.get_product(product_id)


@route(bp, "/openapi.json", summary="This document", tag="system", response={"type": "object"})
def get_openapi() -> Any:
    return openapi.document()


@route(
    bp,
    "/currencies",
    summary="List currencies",
    tag="market",
    response={"type": "array", "items": currencies.CURRENCY_SCHEMA},
)
def list_currencies() -> Any:
    with db.connection() as conn:
        return currencies.list_currencies(conn)


@route(
    bp,
    "/currencies/{currency_id}",
    summary="One currency",
    tag="market",
    errors=(404,),
    response=currencies.CURRENCY_SCHEMA,
)
def get_currency(currency_id: str) -> Any:
    with db.connection() as conn:
        return currencies.get_currency(conn, currency_id)
