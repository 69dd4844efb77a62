"""Orders and fills (Coinbase Exchange shapes): `trade` to place and cancel, `view` to read."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.bodies import json_object
from chalicelib.api.http import json_response, route
from chalicelib.core import paging
from chalicelib.identity.auth import Principal
from chalicelib.trading import fills, order_requests, orders

bp = Blueprint(__name__)

_ORDER_REQUEST = {
    "type": "object",
    "required": ["side", "product_id"],
    "properties": {
        "client_oid": {"type": "string"},
        "type": {"type": "string", "enum": list(order_requests.TYPES)},
        "side": {"type": "string", "enum": list(order_requests.SIDES)},
        "product_id": {"type": "string"},
        "price": {"type": "string"},
        "size": {"type": "string"},
        "funds": {"type": "string"},
        "time_in_force": {"type": "string", "enum": list(order_requests.TIME_IN_FORCE)},
        "post_only": {"type": "boolean"},
        "stp": {"type": "string", "enum": list(order_requests.STP_MODES)},
    },
}
_PRODUCT_QUERY = {
    "name": "product_id",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
}


def _query() -> dict[str, str]:
    return dict(bp.current_request.query_params or {})


@route(
    bp,
    "/orders",
    methods=("POST",),
    summary="Place an order",
    tag="orders",
    auth="trade",
    request=_ORDER_REQUEST,
    response=orders.ORDER_SCHEMA,
)
def place_order(principal: Principal) -> Any:
    request = order_requests.parse(json_object(bp.current_request))
    return orders.place(principal.user_id, request)


@route(
    bp,
    "/orders",
    summary="Your orders (default: open and pending)",
    tag="orders",
    auth="view",
    response={"type": "array", "items": orders.ORDER_SCHEMA},
    parameters=(
        *paging.PARAMETERS,
        _PRODUCT_QUERY,
        {
            "name": "status",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": list(orders.STATUS_FILTERS)},
        },
    ),
)
def list_orders(principal: Principal) -> Any:
    params = bp.current_request.query_params
    statuses = params.getlist("status") if params and "status" in params else []
    items, headers = orders.list_orders(
        principal.user_id, statuses, _query().get("product_id"), paging.parse(_query())
    )
    return json_response(items, headers=headers)


@route(
    bp,
    "/orders",
    methods=("DELETE",),
    summary="Cancel all your open orders",
    tag="orders",
    auth="trade",
    response={"type": "array", "items": {"type": "string"}},
    parameters=(_PRODUCT_QUERY,),
)
def cancel_all(principal: Principal) -> Any:
    return orders.cancel_all(principal.user_id, _query().get("product_id"))


@route(
    bp,
    "/orders/{order_ref}",
    summary="One order, by id or client:<client_oid>",
    tag="orders",
    auth="view",
    errors=(404,),
    response=orders.ORDER_SCHEMA,
)
def get_order(principal: Principal, order_ref: str) -> Any:
    return orders.get(principal.user_id, order_ref)


@route(
    bp,
    "/orders/{order_ref}",
    methods=("DELETE",),
    summary="Cancel an order, by id or client:<client_oid>",
    tag="orders",
    auth="trade",
    errors=(404,),
    response={"type": "string"},
    parameters=(_PRODUCT_QUERY,),
)
def cancel_order(principal: Principal, order_ref: str) -> Any:
    return orders.cancel(principal.user_id, order_ref, _query().get("product_id"))


@route(
    bp,
    "/fills",
    summary="Your fills, by order or product",
    tag="orders",
    auth="view",
    response={"type": "array", "items": fills.FILL_SCHEMA},
    parameters=(
        *paging.PARAMETERS,
        _PRODUCT_QUERY,
        {"name": "order_id", "in": "query", "required": False, "schema": {"type": "string"}},
    ),
)
def list_fills(principal: Principal) -> Any:
    query = _query()
    items, headers = fills.list_fills(
        principal.user_id, query.get("order_id"), query.get("product_id"), paging.parse(query)
    )
    return json_response(items, headers=headers)
