"""Postgres connections: one pool per database URL, created on first use."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from chalicelib.platform.config import settings

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


@contextmanager
def write_checks(failures: Mapping[str, type[Exception]]) -> Iterator[None]:
    """Raise the caller's exception for a failed `write_check` (migration 0006): a check
    inside a statement that aborts its transaction on the server with SQLSTATE `code`.
    `failures` maps those codes to exceptions; any other error passes unchanged."""
    try:
        yield
    except psycopg.Error as exc:
        failure = failures.get(exc.sqlstate or "")
        if failure is None:
            raise
        raise failure(exc.diag.message_primary or exc.sqlstate) from exc


def array_text(values: Iterable[object]) -> str:
    """A one-dimensional Postgres array in its text input form, for a batch write's column
    passed as ONE text parameter and cast in SQL (`unnest(%s::numeric[])`).

    psycopg dumps a list element by element; the batch writes of the matcher pass thousands of
    elements a second, and one join of strings is much cheaper. Elements:
    None -> NULL, bools, ints (exact, any size: numeric columns), anything else by its str(),
    always quoted so free text (reject reasons) cannot break the literal."""
    return "{" + ",".join([_element(v) for v in values]) + "}"


def _element(v: object) -> str:
    if v is None:
        return "NULL"
    if v is True:
        return "t"
    if v is False:
        return "f"
    if type(v) is int:
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
