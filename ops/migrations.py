"""Schema migrations (yoyo, plain SQL up/down files in migrations/) and the catalog seed."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from yoyo import get_backend, read_migrations

from chalicelib.core.catalog import ASSETS, PRODUCTS, fee_account, fee_account_email

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _yoyo_url(database_url: str) -> str:
    # yoyo picks its driver from the scheme; "postgresql+psycopg" is psycopg 3.
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ValueError(f"not a postgres URL: {database_url!r}")
    return f"postgresql+psycopg://{rest}"


def migrate_up(database_url: str) -> list[str]:
    """Apply every pending migration; returns the ids applied."""
    backend = get_backend(_yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    return [m.id for m in todo]


def migrate_down(database_url: str, count: int = 1) -> list[str]:
    """Roll back the newest `count` applied migrations; returns the ids rolled back."""
    backend = get_backend(_yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        todo = backend.to_rollback(migrations)[:count]
        backend.rollback_migrations(todo)
    return [m.id for m in todo]


def applied(database_url: str) -> list[str]:
    backend = get_backend(_yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    return [m.id for m in migrations if backend.is_applied(m)]


def ensure_database(database_url: str) -> bool:
    """Create the URL's database if it does not exist; returns True if it created it."""
    params = conninfo_to_dict(database_url)
    name = params.get("dbname") or "postgres"
    admin = make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(str(name)))
        )
        return True


def seed(database_url: str) -> None:
    """Upsert the catalog's assets and products, their product state, and the fee account.

    Fee rates and grids follow the catalog; status flags are left as operators set them.
    """
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        for a in ASSETS.values():
            conn.execute(
                """INSERT INTO assets (id, name, exponent, kind, funding_increment)
                   VALUES (%s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                     exponent = excluded.exponent, kind = excluded.kind,
                     funding_increment = excluded.funding_increment""",
                (a.id, a.name, a.exponent, a.kind, a.funding_increment),
            )
        for p in PRODUCTS.values():
            conn.execute(
                """INSERT INTO products (id, base_asset, quote_asset, tick, lot, min_size,
                     min_market_funds, maker_fee_rate, taker_fee_rate)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET tick = excluded.tick, lot = excluded.lot,
                     min_size = excluded.min_size, min_market_funds = excluded.min_market_funds,
                     maker_fee_rate = excluded.maker_fee_rate,
                     taker_fee_rate = excluded.taker_fee_rate""",
                (
                    p.id,
                    p.base.id,
                    p.quote.id,
                    p.tick,
                    p.lot,
                    p.min_size,
                    p.min_market_funds,
                    p.maker_fee_rate,
                    p.taker_fee_rate,
                ),
            )
            conn.execute(
                "INSERT INTO product_state (product_id) VALUES (%s) ON CONFLICT DO NOTHING",
                (p.id,),
            )
        for p in PRODUCTS.values():
            # The password hash is not a hash of anything: a fee account can never log in.
            conn.execute(
                """INSERT INTO users (id, email, password_hash, is_system)
                   VALUES (%s, %s, '!', true) ON CONFLICT (id) DO NOTHING""",
                (fee_account(p.id), fee_account_email(p.id)),
            )
            for asset in (p.base.id, p.quote.id):
                conn.execute(
                    """INSERT INTO balances (id, user_id, asset) VALUES (gen_random_uuid(), %s, %s)
                       ON CONFLICT (user_id, asset) DO NOTHING""",
                    (fee_account(p.id), asset),
                )
