"""Which products this matcher owns: one Postgres advisory lock per product, all held by one
dedicated connection (session-level locks die with it, so a dead matcher's products free
themselves and a waiting matcher takes them on its next poll).

The lock is the first line of defence; the fence in product_state (settlement.py) is the
second, for the moment between losing the connection and noticing it.
"""

from __future__ import annotations

import contextlib
import zlib

import psycopg

# The first key of every matcher lock: nothing else in the exchange uses advisory locks with it.
LOCK_NAMESPACE = 0x6D61_7463  # "matc"


def lock_key(product_id: str) -> int:
    """A stable int4 for a product (advisory lock keys are signed 32-bit in the two-key form)."""
    crc = zlib.crc32(product_id.encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class Ownership:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.Connection | None = None
        self.owned: set[str] = set()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            # keepalives: a half-open connection must fail in seconds, not on the OS default
            self._conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=3,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=2,
                application_name="exchange-matcher-locks",
            )
        return self._conn

    def try_acquire(self, product_id: str) -> bool:
        if product_id in self.owned:
            return True
        row = (
            self._connection()
            .execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, lock_key(product_id)))
            .fetchone()
        )
        if row and row[0]:
            self.owned.add(product_id)
            return True
        return False

    def alive(self) -> bool:
        """Whether the locks are still ours: the connection that holds them still answers.
        If it does not, every lock is gone and `owned` is emptied."""
        if self._conn is None or not self.owned:
            return True
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self.lost()
            return False

    def lost(self) -> None:
        self.owned.clear()
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def release(self, product_id: str) -> None:
        if product_id not in self.owned:
            return
        self.owned.discard(product_id)
        if self._conn is not None and not self._conn.closed:
            self._conn.execute(
                "SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, lock_key(product_id))
            )

    def close(self) -> None:
        """Release everything (closing the session releases its advisory locks)."""
        self.lost()
