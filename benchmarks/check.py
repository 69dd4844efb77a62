"""The cost of `exchange check`'s proof of every account (matcher/account_proof.py) on a large
history.

    python benchmarks/check.py                           # 100,000 trades, 10,000 accounts
    python benchmarks/check.py --trades 20000 --accounts 2000 --runs 5

Uses the local Postgres (DATABASE_URL or the default, started if missing) with a database of its
own, dropped afterwards. It writes a consistent history in bulk, in SQL (no matcher, no queue):
accounts with a completed deposit of every asset; trades spread over the three products between
two random accounts each, every trade with its maker and taker orders (done, filled by it), its
ledger rows as settlement writes them (the parties' match and fee rows, the fee account's fee
row) and every balance equal to its ledger's sum. The whole check then runs once, untimed: every
check but the replay must pass (the history has no order sequence to replay). Figures: the time
of check 6 (accounts) and check 7 (trade ledger), each in the check's REPEATABLE READ READ ONLY
snapshot, `--runs` times (min and median), with the sizes of the tables they read; and, as the
baseline of the same run, one read of the whole ledger summed per balance (what check 3 reads).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from chalicelib.core.catalog import FEE_ACCOUNTS, PRODUCTS
from matcher.account_proof import check_accounts, check_trade_ledger
from matcher.check import Report, run_check
from ops import migrations, services

# What each account deposits, in whole units: far more than its trades can take out.
_DEPOSIT = {"BTC": 1_000, "ETH": 100_000, "USD": 1_000_000_000}
# Each product's price range in ticks (around 30,000 USD, 2,000 USD and 0.05 BTC).
_TICKS = {
    "BTC-USD": (2_900_000, 3_100_000),
    "ETH-USD": (190_000, 210_000),
    "ETH-BTC": (4_500, 5_500),
}


def build(conn: psycopg.Connection, n_trades: int, n_accounts: int) -> None:
    """The synthetic history: accounts, deposits, orders, trades, ledger rows, balances."""
    products = [
        (
            i,
            p.id,
            p.base.id,
            p.quote.id,
            p.quote_units_per_tick,
            p.base_units_per_lot,
            p.quote_units_per_tick_lot,
            str(p.maker_fee_rate),
            str(p.taker_fee_rate),
            *_TICKS[p.id],
            FEE_ACCOUNTS[p.id],
        )
        for i, p in enumerate(PRODUCTS.values())
    ]
    conn.execute(
        """CREATE TEMP TABLE bench_products (k int, id text, base text, quote text,
             tick bigint, lot numeric, per_tick_lot numeric, maker_rate numeric,
             taker_rate numeric, lo int, hi int, fee_user uuid)"""
    )
    with conn.cursor().copy("COPY bench_products FROM STDIN") as copy:
        for row in products:
            copy.write_row(row)
    conn.execute("CREATE TEMP TABLE bench_accounts (n int, id uuid)")
    conn.execute(
        """INSERT INTO bench_accounts
           SELECT n, gen_random_uuid() FROM generate_series(0, %s - 1) n""",
        (n_accounts,),
    )
    conn.execute(
        """INSERT INTO users (id, email, password_hash)
           SELECT id, id || '@bench.invalid', 'x' FROM bench_accounts"""
    )
    conn.execute(
        """INSERT INTO balances (id, user_id, asset)
           SELECT gen_random_uuid(), a.id, s.id FROM bench_accounts a CROSS JOIN assets s"""
    )
    conn.execute(
        "CREATE TEMP TABLE bench_deposits (id uuid, user_id uuid, asset text, amount numeric)"
    )
    conn.execute(
        """INSERT INTO bench_deposits
           SELECT gen_random_uuid(), a.id, s.id, d.whole * 10::numeric ^ s.exponent
           FROM bench_accounts a CROSS JOIN assets s
           JOIN unnest(%s::text[], %s::numeric[]) AS d(asset, whole) ON d.asset = s.id""",
        (list(_DEPOSIT), list(_DEPOSIT.values())),
    )
    conn.execute(
        """INSERT INTO deposits (id, user_id, asset, amount, address, status, completed_at)
           SELECT id, user_id, asset, amount, 'bench', 'completed', now() FROM bench_deposits"""
    )
    # Per trade: its product, two distinct accounts, the maker's side, price and size.
    conn.execute(
        """CREATE TEMP TABLE bench_draws (i int, k int, mn int, step int, maker_side text,
             r float8, lots int)"""
    )
    conn.execute(
        """INSERT INTO bench_draws
           SELECT i, i %% 3, floor(random() * %(n)s)::int, 1 + floor(random() * (%(n)s - 1))::int,
                  CASE WHEN random() < 0.5 THEN 'buy' ELSE 'sell' END, random(),
                  1 + floor(random() * 1000)::int
           FROM generate_series(1, %(t)s) i""",
        {"n": n_accounts, "t": n_trades},
    )
    conn.execute(
        """CREATE TEMP TABLE bench_trades AS
           SELECT p.*, row_number() OVER (PARTITION BY p.id ORDER BY s.i) AS trade_id,
                  gen_random_uuid() AS maker_order, gen_random_uuid() AS taker_order,
                  m.id AS maker, k.id AS taker, s.maker_side,
                  (p.lo + floor(s.r * (p.hi - p.lo))::bigint) * p.tick AS price,
                  s.lots * p.lot AS size,
                  (p.lo + floor(s.r * (p.hi - p.lo))::bigint) * s.lots * p.per_tick_lot AS funds
           FROM bench_draws s
           JOIN bench_products p ON p.k = s.k
           JOIN bench_accounts m ON m.n = s.mn
           JOIN bench_accounts k ON k.n = (s.mn + s.step) % (SELECT count(*) FROM bench_accounts)"""
    )
    conn.execute(
        """ALTER TABLE bench_trades ADD COLUMN maker_fee numeric, ADD COLUMN taker_fee numeric;
           UPDATE bench_trades SET maker_fee = ceil(funds * maker_rate),
                                   taker_fee = ceil(funds * taker_rate)"""
    )
    conn.execute(
        """INSERT INTO orders (id, user_id, product_id, side, type, price, size, status,
             done_reason, hold_asset, hold_amount, filled_size, executed_value, fill_fees,
             done_at)
           SELECT o.id, o.user_id, t.id, o.side, 'limit', t.price, t.size, 'done', 'filled',
                  CASE o.side WHEN 'buy' THEN t.quote ELSE t.base END, 0, t.size, t.funds,
                  o.fee, now()
           FROM bench_trades t CROSS JOIN LATERAL (VALUES
             (t.maker_order, t.maker, t.maker_side, t.maker_fee),
             (t.taker_order, t.taker, CASE t.maker_side WHEN 'buy' THEN 'sell' ELSE 'buy' END,
              t.taker_fee)) AS o(id, user_id, side, fee)"""
    )
    conn.execute(
        """INSERT INTO trades (product_id, trade_id, seq, maker_order_id, taker_order_id,
             maker_side, price, size, funds, maker_fee, taker_fee)
           SELECT id, trade_id, trade_id, maker_order, taker_order, maker_side, price, size,
                  funds, maker_fee, taker_fee FROM bench_trades"""
    )
    conn.execute(
        """UPDATE product_state s SET last_trade_id = t.n, last_seq = t.n
           FROM (SELECT id, count(*) AS n FROM bench_trades GROUP BY id) t
           WHERE s.product_id = t.id"""
    )
    # The ledger rows: the deposits' transfers, then each side's rows as settlement writes them.
    conn.execute(
        """INSERT INTO ledger_entries (balance_id, amount, balance, type, transfer_id)
           SELECT b.id, d.amount, d.amount, 'transfer', d.id
           FROM bench_deposits d JOIN balances b USING (user_id, asset)"""
    )
    conn.execute(
        """INSERT INTO ledger_entries (balance_id, amount, balance, type, order_id, product_id,
             trade_id)
           SELECT b.id, r.amount, 0, r.type, s.order_id, s.id, s.trade_id
           FROM (SELECT t.*, x.*
                 FROM bench_trades t CROSS JOIN LATERAL (VALUES
                   (t.maker_order, t.maker, t.maker_side, t.maker_fee),
                   (t.taker_order, t.taker,
                    CASE t.maker_side WHEN 'buy' THEN 'sell' ELSE 'buy' END, t.taker_fee))
                   AS x(order_id, user_id, side, fee)) s
           CROSS JOIN LATERAL (VALUES
             (s.user_id, s.quote, 'match', CASE s.side WHEN 'buy' THEN -s.funds END),
             (s.user_id, s.quote, 'fee', CASE s.side WHEN 'buy' THEN -s.fee END),
             (s.user_id, s.base, 'match', CASE s.side WHEN 'buy' THEN s.size ELSE -s.size END),
             (s.user_id, s.quote, 'match', CASE s.side WHEN 'sell' THEN s.funds END),
             (s.user_id, s.quote, 'fee', CASE s.side WHEN 'sell' THEN -s.fee END),
             (s.fee_user, s.quote, 'fee', s.fee)) AS r(user_id, asset, type, amount)
           JOIN balances b ON b.user_id = r.user_id AND b.asset = r.asset
           WHERE r.amount IS NOT NULL AND r.amount <> 0"""
    )
    conn.execute(
        """UPDATE balances b SET available = l.total
           FROM (SELECT balance_id, sum(amount) AS total FROM ledger_entries GROUP BY 1) l
           WHERE b.id = l.balance_id"""
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.commit()


def _one(conn: psycopg.Connection, sql: str) -> object:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def _ledger_sums(conn: psycopg.Connection, report: Report) -> None:
    """The baseline: one read of the whole ledger, summed per balance (as check 3 reads it)."""
    conn.execute("SELECT balance_id, sum(amount) FROM ledger_entries GROUP BY 1").fetchall()


def timed(url: str, check: Callable[[psycopg.Connection, Report], None], runs: int) -> list[float]:
    out = []
    with psycopg.connect(url) as conn:
        for _ in range(runs):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            report = Report()
            t = time.perf_counter()
            check(conn, report)
            out.append(time.perf_counter() - t)
            conn.commit()
            assert report.ok, report.text()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, default=100_000)
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    pg = services.postgres(services.STATE_DIR)
    url = pg.url.rsplit("/", 1)[0] + f"/exchange_bench_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(url)
    try:
        migrations.migrate_up(url)
        migrations.seed(url)
        t = time.perf_counter()
        with psycopg.connect(url) as conn:
            build(conn, args.trades, args.accounts)
            tables = ("trades", "orders", "ledger_entries", "balances", "deposits")
            sizes = {table: _one(conn, f"SELECT count(*) FROM {table}") for table in tables}
            version = _one(conn, "SHOW server_version")
        print(
            f"history built in {time.perf_counter() - t:.1f} s (Postgres {version}): "
            + ", ".join(f"{n:,} {table}" for table, n in sizes.items())
        )
        whole = run_check(url, save=False)
        others = [v for v in whole.violations if not v.startswith("[replay")]
        assert not others, "\n".join(others)
        print("exchange check: every check but the replay passes")
        for name, check in (
            ("ledger summed", _ledger_sums),
            ("6. accounts", check_accounts),
            ("7. trade ledger", check_trade_ledger),
        ):
            times = timed(url, check, args.runs)
            print(
                f"{name:16} min {min(times) * 1000:8.1f} ms  "
                f"median {statistics.median(times) * 1000:8.1f} ms  ({args.runs} runs)"
            )
    finally:
        admin = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
