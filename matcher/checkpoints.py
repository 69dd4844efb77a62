"""Checkpoints of `exchange check`'s replay (table check_checkpoints, migration 0005).

After a product's replay passes, the check stores the replayed book at the last verified seq with
a digest of what it covers; the next run verifies the digest and replays only what is new.
Only the latest checkpoint per product is kept: nothing reads older ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from matcher.books import Rules
from matcher.engine import OrderBook

# A 64-bit hash of a row, summed over rows: an order-independent digest that one streaming
# aggregate computes (no sort, no memory per row). ROW(...)::text keeps NULL apart from a value.
_HASH = "('x' || left(md5(ROW({})::text), 16))::bit(64)::bigint"
_TRADE_FIELDS = """trade_id, seq, maker_order_id, taker_order_id, maker_side, price, size, funds,
    maker_fee, taker_fee"""
_ORDER_FIELDS = """id, user_id, side, type, price, size, funds, time_in_force, post_only, stp,
    accepted_seq, CASE WHEN cancel_seq <= %(seq)s THEN cancel_seq END"""
_TRADE_HASH = _HASH.format(_TRADE_FIELDS)
_ORDER_HASH = _HASH.format(_ORDER_FIELDS)
_DIGEST = f"""
    WITH t AS (SELECT count(*) AS n, coalesce(sum({_TRADE_HASH}), 0) AS d FROM trades
               WHERE product_id = %(product)s AND trade_id <= %(trade_id)s),
         o AS (SELECT count(*) AS n, coalesce(sum({_ORDER_HASH}), 0) AS d FROM orders
               WHERE product_id = %(product)s AND accepted_seq <= %(seq)s)
    SELECT t.n, t.d, o.n, o.d FROM t, o"""


@dataclass(frozen=True, slots=True)
class Digest:
    """What a checkpoint covers, as counts and sums of a 64-bit hash per row: the product's
    trades with trade_id <= its last_trade_id (every field the replay compares), and the
    replay's inputs, its orders with accepted_seq <= its seq (the command fields, accepted_seq,
    and cancel_seq when it is <= seq: a later cancel legitimately sets it)."""

    trades: int
    trade_sum: int
    orders: int
    order_sum: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A product's replayed book at `seq`, after a replay (of everything up to `seq`) passed."""

    product_id: str
    seq: int
    last_trade_id: int
    book: dict[str, Any]  # OrderBook.snapshot()
    digest: Digest


def digest(conn: psycopg.Connection, product_id: str, seq: int, trade_id: int) -> Digest:
    """One aggregate query over the covered trades and orders (index ranges of both).

    It catches any insert, delete or change of a hashed field in the covered rows, by accident
    or by a bug. It does not catch a change to a field it does not hash (holds and fill totals:
    checks 2 and 4 read those in full on every run) nor a forgery: the hash is not keyed, and
    whoever can rewrite trades can rewrite check_checkpoints too. `--full` trusts neither.
    """
    row = conn.execute(
        _DIGEST, {"product": product_id, "seq": seq, "trade_id": trade_id}
    ).fetchone()
    assert row is not None
    return Digest(*(int(x) for x in row))


def table_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('check_checkpoints') IS NOT NULL").fetchone()
    return bool(row and row[0])


def load(conn: psycopg.Connection, product_id: str) -> Checkpoint | None:
    row = conn.execute(
        """SELECT seq, last_trade_id, book, trade_count, trade_digest, order_count, order_digest
           FROM check_checkpoints WHERE product_id = %s""",
        (product_id,),
    ).fetchone()
    if row is None:
        return None
    seq, trade_id, book, *digest = row
    return Checkpoint(product_id, int(seq), int(trade_id), book, Digest(*(int(x) for x in digest)))


def save(conn: psycopg.Connection, cp: Checkpoint) -> None:
    d = cp.digest
    conn.execute(
        """INSERT INTO check_checkpoints (product_id, seq, last_trade_id, book, trade_count,
             trade_digest, order_count, order_digest) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (product_id) DO UPDATE SET seq = excluded.seq,
             last_trade_id = excluded.last_trade_id, book = excluded.book,
             trade_count = excluded.trade_count, trade_digest = excluded.trade_digest,
             order_count = excluded.order_count, order_digest = excluded.order_digest,
             created_at = now()""",
        (
            cp.product_id,
            cp.seq,
            cp.last_trade_id,
            Jsonb(cp.book),
            d.trades,
            d.trade_sum,
            d.orders,
            d.order_sum,
        ),
    )


def resume(
    conn: psycopg.Connection, cp: Checkpoint, rules: Rules, state: tuple[int, int]
) -> OrderBook | str:
    """The checkpoint's book, if what it covers is unchanged; else what is wrong with it.
    `state`: the product's (last_seq, last_trade_id) now."""
    last_seq, last_trade_id = state
    if cp.seq > last_seq or cp.last_trade_id > last_trade_id:
        problem = f"is past product_state (seq {last_seq}, last trade {last_trade_id})"
    else:
        was, now = cp.digest, digest(conn, cp.product_id, cp.seq, cp.last_trade_id)
        if (now.trades, now.trade_sum) != (was.trades, was.trade_sum):
            problem = f"the trades it covers changed ({was.trades} then, {now.trades} now)"
        elif (now.orders, now.order_sum) != (was.orders, was.order_sum):
            problem = f"the orders it covers changed ({was.orders} then, {now.orders} now)"
        else:
            try:
                book = OrderBook.restore(cp.book, rules.engine_rules())
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"its book does not restore ({exc})"
            else:
                if book.seq == cp.seq:
                    return book
                problem = f"its book is at seq {book.seq}"
    return problem
