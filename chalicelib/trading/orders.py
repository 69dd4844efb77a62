"""Placing, cancelling and reading orders (the API's half of the order path).

Placing is one Postgres transaction (hold the funds with a conditional UPDATE, insert the order as
pending), then one SQS send. If the send fails the order stays pending with its funds held and
the matcher's sweeper sends it again under the same deduplication id. The sends of a request
share one time budget (sqs.api_send_budget_s) well inside the Lambda's timeout: one that runs out
is a failed send like any other, so the client always gets its order back once its hold is
committed, never a timeout.

Cancelling is the same shape: record the request on the order (`cancel_requested_at`), commit,
then send the cancel message. If that send fails, the sweeper re-sends the cancel of every live
order whose request is a few seconds old, so a cancel the API accepted is never lost.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg

from chalicelib.core import balances, paging, wire
from chalicelib.core.catalog import PRODUCTS, Product
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.core.order_rows import ORDER_COLUMNS, OrderRow, order_row
from chalicelib.messaging import order_queue
from chalicelib.messaging.sqs import api_message_client, api_send_budget_s
from chalicelib.platform import db
from chalicelib.platform.config import settings
from chalicelib.platform.logs import logger
from chalicelib.trading.order_requests import OrderRequest, check_band

LIVE = ("pending", "open")

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "product_id",
        "side",
        "type",
        "status",
        "filled_size",
        "executed_value",
        "fill_fees",
        "settled",
        "created_at",
    ],
    "properties": {
        **{
            k: {"type": "string"}
            for k in (
                "id",
                "product_id",
                "side",
                "type",
                "status",
                "filled_size",
                "executed_value",
                "fill_fees",
                "created_at",
                "time_in_force",
                "stp",
            )
        },
        **{
            k: {"type": "string", "nullable": True}
            for k in (
                "client_oid",
                "price",
                "size",
                "funds",
                "specified_funds",
                "done_reason",
                "reject_reason",
                "done_at",
            )
        },
        "post_only": {"type": "boolean"},
        "settled": {"type": "boolean"},
    },
}

_queue_urls: dict[tuple[str | None, str, str], str] = {}  # (endpoint, prefix, product) -> URL
_queue_lock = threading.Lock()


def shape(row: OrderRow) -> dict[str, Any]:
    """An order as the API returns it."""
    p = PRODUCTS[row.product_id]
    quote = p.quote.id
    funds_text = None if row.funds is None else wire.asset_amount(row.funds, quote)
    return {
        "id": str(row.id),
        "client_oid": str(row.client_oid) if row.client_oid else None,
        "product_id": row.product_id,
        "side": row.side,
        "type": row.type,
        "price": None if row.price is None else wire.price(row.price, p),
        "size": None if row.size is None else wire.size(row.size, p),
        "funds": funds_text,
        "specified_funds": funds_text,
        "time_in_force": row.time_in_force,
        "post_only": row.post_only,
        "stp": row.stp,
        "status": row.status,
        "done_reason": row.done_reason,
        "reject_reason": row.reject_reason,
        "filled_size": wire.size(row.filled_size, p),
        "executed_value": wire.asset_amount(row.executed_value, quote),
        "fill_fees": wire.asset_amount(row.fill_fees, quote),
        "settled": row.status in ("done", "rejected"),
        "created_at": wire.iso(row.created_at),
        "done_at": wire.iso(row.done_at),
    }


def _hold(request: OrderRequest, available_quote: int) -> tuple[str, int, int | None]:
    """(asset, amount) the order holds, and the funds a market buy carries to the matcher."""
    p = request.product
    if request.side == "sell":
        assert request.size_units is not None
        return p.base.id, request.size_units, None
    if request.type == "limit":
        assert request.price_ticks is not None and request.size_lots is not None
        return p.quote.id, p.limit_buy_hold(request.price_ticks, request.size_lots), None
    if request.funds is not None:
        return p.quote.id, request.funds, request.funds
    # A market buy by size has no price to hold against: it holds the whole available quote
    # balance as its budget, and the matcher releases what it does not spend.
    if available_quote <= 0:
        raise BadRequest("Insufficient funds")
    return p.quote.id, available_quote, available_quote


def _check_modes(conn: psycopg.Connection, request: OrderRequest) -> None:
    row = conn.execute(
        "SELECT status, trading_disabled, cancel_only, post_only, limit_only FROM products "
        "WHERE id = %s",
        (request.product.id,),
    ).fetchone()
    if row is None:
        raise BadRequest("Product not found")
    status, disabled, cancel_only, post_only_mode, limit_only = row
    if status != "online" or disabled:
        raise BadRequest(f"Trading is disabled for {request.product.id}")
    if cancel_only:
        raise BadRequest(f"{request.product.id} is in cancel only mode")
    if limit_only and request.type != "limit":
        raise BadRequest(f"{request.product.id} is in limit only mode")
    if post_only_mode and not request.post_only:
        raise BadRequest(f"{request.product.id} is in post only mode")


def _last_price_ticks(conn: psycopg.Connection, product: Product) -> int | None:
    row = conn.execute(
        "SELECT price FROM trades WHERE product_id = %s ORDER BY trade_id DESC LIMIT 1",
        (product.id,),
    ).fetchone()
    return None if row is None else int(row[0]) // product.quote_units_per_tick


def _existing(conn: psycopg.Connection, user_id: str, client_oid: str) -> dict[str, Any] | None:
    row = (
        conn.cursor(row_factory=order_row)
        .execute(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = %s AND client_oid = %s",
            (user_id, client_oid),
        )
        .fetchone()
    )
    return None if row is None else shape(row)


def place(user_id: str, request: OrderRequest) -> dict[str, Any]:
    """Hold the funds and record the order, then hand it to the matcher. Idempotent by
    client_oid: a repeated one returns the order already placed."""
    order_id = str(uuid.uuid4())
    with db.connection() as conn:
        if request.client_oid and (found := _existing(conn, user_id, request.client_oid)):
            return found
        _check_modes(conn, request)
        check_band(request, _last_price_ticks(conn, request.product))
        available_quote = 0
        if request.type == "market" and request.side == "buy" and request.funds is None:
            row = conn.execute(
                "SELECT available FROM balances WHERE user_id = %s AND asset = %s",
                (user_id, request.product.quote.id),
            ).fetchone()
            available_quote = int(row[0]) if row else 0
        asset, amount, funds = _hold(request, available_quote)
        try:
            with conn.transaction():
                balances.place_hold(conn, user_id, asset, amount)
                placed = (
                    conn.cursor(row_factory=order_row)
                    .execute(
                        f"""INSERT INTO orders (id, user_id, client_oid, product_id, side, type,
                              price, size, funds, time_in_force, post_only, stp, hold_asset,
                              hold_amount)
                            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                            RETURNING {ORDER_COLUMNS}""",
                        (
                            order_id,
                            user_id,
                            request.client_oid,
                            request.product.id,
                            request.side,
                            request.type,
                            request.price_units,
                            request.size_units,
                            funds,
                            request.time_in_force,
                            request.post_only,
                            request.stp,
                            asset,
                            amount,
                        ),
                    )
                    .fetchone()
                )
        except balances.InsufficientFunds as exc:
            raise BadRequest("Insufficient funds") from exc
        except psycopg.errors.UniqueViolation:
            # The same client_oid placed concurrently: the other request won; return its order.
            assert request.client_oid is not None
            found = _existing(conn, user_id, request.client_oid)
            if found is None:
                raise
            return found
    assert placed is not None
    _publish([order_queue.QueueMessage("order", order_id, request.product.id, user_id)])
    return shape(placed)


def _publish(messages: list[order_queue.QueueMessage]) -> None:
    """Send each message, all within one budget; never raises. What is not sent stays recorded in
    Postgres (the order pending with its funds held, or its cancel request) and the matcher's
    sweeper sends it."""
    try:
        cfg = settings()
        sqs = api_message_client(cfg).until(time.monotonic() + api_send_budget_s())
    except Exception:
        logger.exception(
            "order publish failed; left for the sweeper",
            extra={"order_ids": [m.order_id for m in messages]},
        )
        return
    for message in messages:
        try:
            key = (cfg.aws_endpoint_url, cfg.queue_prefix, message.product_id)
            with _queue_lock:
                url = _queue_urls.get(key)
            if url is None:
                url = order_queue.queue_url(sqs, cfg, message.product_id)
                with _queue_lock:
                    _queue_urls[key] = url
            order_queue.send(sqs, url, message)
        except Exception:
            logger.exception(
                "order publish failed; left for the sweeper",
                extra={"order_id": message.order_id, "kind": message.kind},
            )


def _parse_ref(ref: str) -> tuple[str, str]:
    """An order reference from a path: "<uuid>" or "client:<client_oid>"."""
    column, _, value = ref.partition(":") if ref.startswith("client:") else ("id", "", ref)
    try:
        return ("client_oid" if column == "client" else "id"), str(uuid.UUID(value))
    except ValueError as exc:
        raise NotFound("order not found") from exc


def get(user_id: str, ref: str) -> dict[str, Any]:
    column, value = _parse_ref(ref)
    with db.connection() as conn:
        row = (
            conn.cursor(row_factory=order_row)
            .execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = %s AND {column} = %s",
                (user_id, value),
            )
            .fetchone()
        )
    if row is None:
        raise NotFound("order not found")
    return shape(row)


def cancel(user_id: str, ref: str, product_id: str | None = None) -> str:
    """Record the cancel request, then send the cancel down the order's queue (so it is ordered
    with the account's orders of the product)."""
    order = get(user_id, ref)
    if product_id is not None and order["product_id"] != product_id:
        raise NotFound("order not found")
    if order["status"] not in LIVE:
        raise BadRequest("Order already done")
    with db.connection() as conn:
        requested = conn.execute(
            """UPDATE orders SET cancel_requested_at = coalesce(cancel_requested_at, now())
               WHERE id = %s AND user_id = %s AND status IN ('pending', 'open') RETURNING id""",
            (order["id"], user_id),
        ).fetchone()
    if requested is None:
        raise BadRequest("Order already done")  # the matcher finished it since it was read
    _publish([order_queue.QueueMessage("cancel", order["id"], order["product_id"], user_id)])
    return str(order["id"])


def cancel_all(user_id: str, product_id: str | None) -> list[str]:
    if product_id is not None and product_id not in PRODUCTS:
        raise BadRequest("Product not found")
    for attempt in range(1, 4):
        try:
            with db.connection() as conn:
                # One statement records the request on every live order it cancels (see
                # `cancel`). It locks several rows that a matcher's batch may be updating
                # in another order: Postgres then aborts one of the two, and if it is this
                # one, doing it again is all it takes.
                rows = conn.execute(
                    """WITH requested AS (
                         UPDATE orders
                         SET cancel_requested_at = coalesce(cancel_requested_at, now())
                         WHERE user_id = %s AND status IN ('pending', 'open')
                           AND (%s::text IS NULL OR product_id = %s)
                         RETURNING id, product_id, created_at)
                       SELECT id, product_id FROM requested ORDER BY created_at""",
                    (user_id, product_id, product_id),
                ).fetchall()
            break
        except psycopg.errors.DeadlockDetected:
            if attempt == 3:
                raise
    _publish(
        [order_queue.QueueMessage("cancel", str(oid), product, user_id) for oid, product in rows]
    )
    return [str(r[0]) for r in rows]


STATUS_FILTERS = {
    "open": ("open",),
    "pending": ("pending",),
    "active": LIVE,
    "done": ("done", "rejected"),
    "rejected": ("rejected",),
    "all": ("pending", "open", "done", "rejected"),
}


def list_orders(
    user_id: str, statuses: list[str], product_id: str | None, page: paging.Page
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    wanted: set[str] = set()
    for s in statuses or ["open", "pending"]:
        if s not in STATUS_FILTERS:
            raise BadRequest(f"status must be one of {', '.join(STATUS_FILTERS)}")
        wanted.update(STATUS_FILTERS[s])
    if product_id is not None and product_id not in PRODUCTS:
        raise BadRequest("Product not found")
    params: dict[str, Any] = {"u": user_id, "s": sorted(wanted), "p": product_id, "n": page.limit}
    where = (
        "user_id = %(u)s AND status = ANY(%(s)s) AND (%(p)s::text IS NULL OR product_id = %(p)s)"
    )
    with db.connection() as conn:
        if page.before is not None:
            params["t"], params["i"] = paging.ts_cursor(page.before, "before")
            rows = (
                conn.cursor(row_factory=order_row)
                .execute(
                    f"""SELECT {ORDER_COLUMNS} FROM orders WHERE {where}
                    AND (created_at, id) > (%(t)s, %(i)s) ORDER BY created_at, id LIMIT %(n)s""",
                    params,
                )
                .fetchall()[::-1]
            )
        else:
            extra = ""
            if page.after is not None:
                params["t"], params["i"] = paging.ts_cursor(page.after, "after")
                extra = "AND (created_at, id) < (%(t)s, %(i)s)"
            rows = (
                conn.cursor(row_factory=order_row)
                .execute(
                    f"""SELECT {ORDER_COLUMNS} FROM orders WHERE {where} {extra}
                    ORDER BY created_at DESC, id DESC LIMIT %(n)s""",
                    params,
                )
                .fetchall()
            )
    cursors = [paging.encode_ts_cursor(r.created_at, str(r.id)) for r in rows]
    return [shape(r) for r in rows], paging.headers(
        cursors[0] if cursors else None, cursors[-1] if cursors else None
    )
