"""Liveness of what the API depends on: Postgres, Redis and the product queues."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalicelib.core import catalog
from chalicelib.messaging import queues, sqs
from chalicelib.platform import cache, db
from chalicelib.platform.config import settings


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
    client = sqs.sqs_client(cfg)
    for product_id in catalog.PRODUCTS:
        client.get_queue_url(QueueName=queues.queue_name(cfg.queue_prefix, product_id))


def check_all() -> tuple[bool, dict[str, Any]]:
    checks = {"postgres": _timed(_postgres), "redis": _timed(_redis), "sqs": _timed(_sqs)}
    healthy = all(c["status"] == "ok" for c in checks.values())
    return healthy, {"status": "ok" if healthy else "unavailable", "checks": checks}
