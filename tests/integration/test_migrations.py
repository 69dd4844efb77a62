"""The schema migrates up, down and up again on a real Postgres, and enforces its invariants."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ops import migrations

TABLES = {
    "users",
    "api_keys",
    "assets",
    "products",
    "balances",
    "orders",
    "trades",
    "ledger_entries",
    "product_state",
    "deposit_addresses",
    "deposits",
    "withdrawals",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows} - {t for (t,) in rows if t.startswith("_yoyo") or t == "yoyo_lock"}


@pytest.fixture
def scratch_db(database_url: str) -> Iterator[str]:
    url = database_url.rsplit("/", 1)[0] + f"/exchange_mig_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(url)
    yield url
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


ALL = [
    "0001.initial-schema",
    "0002.matcher",
    "0003.market-data",
    "0004.cancel-requests",
    "0005.check-checkpoints",
    "0006.write-checks",
    "0007.history-references",
    "0008.ledger-balance-reference",
    "0009.api-key-key-id",
]


def test_up_down_up(scratch_db: str) -> None:
    assert migrations.migrate_up(scratch_db) == ALL
    assert _tables(scratch_db) >= TABLES
    assert migrations.migrate_up(scratch_db) == []  # nothing pending the second time

    assert migrations.migrate_down(scratch_db, len(ALL)) == ALL[::-1]
    assert _tables(scratch_db).isdisjoint(TABLES)
    assert migrations.applied(scratch_db) == []

    assert migrations.migrate_up(scratch_db) == ALL
    assert _tables(scratch_db) >= TABLES


def test_seed_is_idempotent_and_matches_the_catalog(scratch_db: str) -> None:
    migrations.migrate_up(scratch_db)
    migrations.seed(scratch_db)
    migrations.seed(scratch_db)
    with psycopg.connect(scratch_db) as conn:
        products = conn.execute(
            "SELECT id, tick::text, lot::text, min_size::text FROM products ORDER BY id"
        ).fetchall()
        assert products == [
            ("BTC-USD", "0.01", "0.000001", "0.0001"),
            ("ETH-BTC", "0.00001", "0.001", "0.01"),
            ("ETH-USD", "0.01", "0.0001", "0.001"),
        ]
        assert conn.execute("SELECT count(*) FROM product_state").fetchone() == (3,)
        fee_balances = conn.execute(
            "SELECT count(*) FROM balances b JOIN users u ON u.id = b.user_id WHERE u.is_system"
        ).fetchone()
        assert fee_balances == (6,)  # a fee account per product, with its base and quote


def test_balances_can_never_go_negative(database_url: str) -> None:
    user_id = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, 'x')",
            (user_id, f"{user_id}@example.com"),
        )
        conn.execute(
            "INSERT INTO balances (id, user_id, asset, available) VALUES (%s, %s, 'BTC', 5)",
            (uuid.uuid4(), user_id),
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "UPDATE balances SET available = available - 6 WHERE user_id = %s", (user_id,)
            )


def test_amounts_are_exact_integers_wide_enough_for_wei(database_url: str) -> None:
    user_id = uuid.uuid4()
    huge = 10**40 + 1  # far past BIGINT; a whale's wei balance must fit exactly
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, 'x')",
            (user_id, f"{user_id}@example.com"),
        )
        conn.execute(
            "INSERT INTO balances (id, user_id, asset, available) VALUES (%s, %s, 'ETH', %s)",
            (uuid.uuid4(), user_id, huge),
        )
        got = conn.execute(
            "SELECT available FROM balances WHERE user_id = %s", (user_id,)
        ).fetchone()
        assert got is not None and int(got[0]) == huge
