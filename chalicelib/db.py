"""Postgres connections: one pool per database URL, created on first use."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from chalicelib.config import settings

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()


def pool(url: str | None = None) -> ConnectionPool:
    url = url or settings().database_url
    with _lock:
        found = _pools.get(url)
        if found is None:
            # Small: a Lambda serves one request at a time, and RDS Proxy multiplexes in AWS.
            found = ConnectionPool(
                url, min_size=0, max_size=4, open=True, timeout=5, kwargs={"connect_timeout": 3}
            )
            _pools[url] = found
        return found


@contextmanager
def connection(url: str | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection; its transaction commits on clean exit and rolls back on error."""
    with pool(url).connection() as conn:
        yield conn


def close_all() -> None:
    with _lock:
        for p in _pools.values():
            p.close()
        _pools.clear()
