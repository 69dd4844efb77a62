"""Liveness of what the API depends on: Postgres, Redis and the product queues.

The public `GET /health` says only ok or degraded: which dependency failed, and how, tells an
outsider about the inside, so that detail goes to the logs and to operators (`exchange health`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalicelib.core import catalog
from chalicelib.messaging import queues, sqs
from chalicelib.platform import cache, db
from chalicelib.platform.config import settings
from chalicelib.platform.logs import logger


def _timed(check: Callable[[], None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure of a dependency is a failed check, not a 500
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _postgres() -> None:
    with db.pool().connection(timeout=3) as conn:
        conn.execute("SELECT 1").fetchone()


def _redis() -> None:
    if not cache.redis_client().ping():
        raise RuntimeError("PING failed")


def _sqs() -> None:
    cfg = settings()
    # The API's own client and budget: a queue service that hangs makes the check fail in time
    # for the answer to be 503, not the Lambda's timeout.
    client = sqs.api_message_client(cfg).until(time.monotonic() + sqs.api_send_budget_s())
    for product_id in catalog.PRODUCTS:
        client.get_queue_url(QueueName=queues.queue_name(cfg.queue_prefix, product_id))


def check_all() -> tuple[bool, dict[str, dict[str, Any]]]:
    """Whether every dependency is up, and each one's check: `{status: "ok", latency_ms}` or
    `{status: "down", error}`. For operators and the logs, never for the public."""
    checks = {"postgres": _timed(_postgres), "redis": _timed(_redis), "sqs": _timed(_sqs)}
    return all(c["status"] == "ok" for c in checks.values()), checks


def public_status() -> tuple[bool, dict[str, str]]:
    """What `GET /health` answers: `{"status": "ok"}` or `{"status": "degraded"}`. The checks of a
    degraded answer are logged."""
    healthy, checks = check_all()
    if not healthy:
        logger.warning("health degraded", extra={"checks": checks})
    return healthy, {"status": "ok" if healthy else "degraded"}
