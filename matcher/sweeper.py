"""Re-send orders whose SendMessage was lost: pending in Postgres, older than a few seconds.

The API commits the order before sending its message, so a failed send leaves it pending with
its funds held. The sweeper sends it again with the same deduplication id (the order id): if
the first send did arrive, SQS drops the copy within its 5-minute window, and past it the
consumer skips the order anyway because it is no longer pending.
"""

from __future__ import annotations

from typing import Any

import psycopg

from chalicelib import order_queue
from chalicelib.order_queue import QueueMessage

MAX_PER_SWEEP = 100


def pending_orders(
    conn: psycopg.Connection, product_id: str, older_than_s: float, limit: int = MAX_PER_SWEEP
) -> list[tuple[str, str]]:
    """(order id, user id) of this product's stale pending orders, oldest first."""
    rows = conn.execute(
        """SELECT id, user_id FROM orders
           WHERE product_id = %s AND status = 'pending'
             AND created_at < now() - make_interval(secs => %s)
           ORDER BY created_at LIMIT %s""",
        (product_id, older_than_s, limit),
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def sweep(
    conn: psycopg.Connection, sqs: Any, queue_url: str, product_id: str, older_than_s: float
) -> int:
    """Re-send this product's stale pending orders; returns how many were sent."""
    ids = pending_orders(conn, product_id, older_than_s)
    sent = 0
    for i in range(0, len(ids), 10):
        chunk = [QueueMessage("order", oid, product_id, uid) for oid, uid in ids[i : i + 10]]
        failed = order_queue.send_batch(sqs, queue_url, chunk)
        sent += len(chunk) - len(failed)
    return sent
