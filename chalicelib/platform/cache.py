"""Redis clients, one per URL, created on first use."""

from __future__ import annotations

import threading

import redis

from chalicelib.platform.config import settings

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def redis_client(url: str | None = None) -> redis.Redis:
    url = url or settings().redis_url
    with _lock:
        found = _clients.get(url)
        if found is None:
            found = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
            )
            _clients[url] = found
        return found
