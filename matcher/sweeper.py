"""Re-send messages the API committed to Postgres but whose SendMessage was lost.

The API commits before it sends, so Postgres remembers what a failed send would otherwise lose:
- an order: it stays pending with its funds held;
- a cancel: the API records `cancel_requested_at` on the order before sending, and the order
  stays live (pending or open).

A sweep re-sends, for one product, the order of every pending order and the cancel of every live
order with a cancel requested, each older than a few seconds, under the same deduplication id as
the first send (the order id, "cancel:<order id>"). If the first send did arrive, SQS drops the
copy within its 5-minute window; past it the copy is harmless: the consumer skips an order that is
no longer pending and a cancel of an order that is done.

A pending order whose cancel was requested is not re-sent as an order: its cancel (the API's, or
the sweeper's once the request is stale) reaches the matcher before it ever could, and a cancel
that overtakes its pending order cancels it without it reaching the book, which is what its
owner asked for.
"""

from __future__ import annotations

from typing import Any

import psycopg

from chalicelib.messaging import order_queue
from chalicelib.messaging.order_queue import QueueMessage

MAX_PER_SWEEP = 100


def pending_orders(
    conn: psycopg.Connection, product_id: str, older_than_s: float, limit: int = MAX_PER_SWEEP
) -> list[tuple[str, str]]:
    """(order id, user id) of this product's stale pending orders not asked to be cancelled,
    oldest first."""
    rows = conn.execute(
        """SELECT id, user_id FROM orders
           WHERE product_id = %s AND status = 'pending' AND cancel_requested_at IS NULL
             AND created_at < now() - make_interval(secs => %s)
           ORDER BY created_at LIMIT %s""",
        (product_id, older_than_s, limit),
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def cancel_requests(
    conn: psycopg.Connection, product_id: str, older_than_s: float, limit: int = MAX_PER_SWEEP
) -> list[tuple[str, str]]:
    """(order id, user id) of this product's live orders whose cancel was requested more than
    `older_than_s` ago, oldest request first (index orders_cancel_requested)."""
    rows = conn.execute(
        """SELECT id, user_id FROM orders
           WHERE product_id = %s AND cancel_requested_at IS NOT NULL
             AND status IN ('pending', 'open')
             AND cancel_requested_at < now() - make_interval(secs => %s)
           ORDER BY cancel_requested_at LIMIT %s""",
        (product_id, older_than_s, limit),
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def sweep(
    conn: psycopg.Connection, sqs: Any, queue_url: str, product_id: str, older_than_s: float
) -> int:
    """Re-send this product's stale pending orders, then the cancels of its live orders with a
    stale cancel request; returns how many messages were sent."""
    messages = [
        QueueMessage("order", oid, product_id, uid)
        for oid, uid in pending_orders(conn, product_id, older_than_s)
    ] + [
        QueueMessage("cancel", oid, product_id, uid)
        for oid, uid in cancel_requests(conn, product_id, older_than_s)
    ]
    sent = 0
    for i in range(0, len(messages), 10):
        chunk = messages[i : i + 10]
        failed = order_queue.send_batch(sqs, queue_url, chunk)
        sent += len(chunk) - len(failed)
    return sent
