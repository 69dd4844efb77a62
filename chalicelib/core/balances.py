"""The one way a balance changes. Every change of a balance writes its ledger row in the same
transaction; moving funds between `available` and `hold` changes no balance and writes none.

Each function takes an open connection and leaves committing to the caller, so a whole business
operation (an order and its hold, a batch of fills) is one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

from chalicelib.core.catalog import ASSETS
from chalicelib.platform.db import array_text

LEDGER_TYPES = frozenset({"transfer", "match", "fee", "rebate", "conversion"})


class InsufficientFunds(Exception):
    """The account's available (or held) amount is smaller than the move asked for."""


# The write_check of `moves_sql`: a balance would have gone below zero (db.write_checks).
FUNDS_CHECK: dict[str, type[Exception]] = {"EX001": InsufficientFunds}


@dataclass(frozen=True, slots=True)
class LedgerRef:
    order_id: str | None = None
    product_id: str | None = None
    trade_id: int | None = None
    transfer_id: str | None = None


def open_accounts(conn: psycopg.Connection, user_id: str) -> None:
    """One balance row per asset for a user; idempotent."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO balances (id, user_id, asset) VALUES (%s, %s, %s)
               ON CONFLICT (user_id, asset) DO NOTHING""",
            [(uuid.uuid4(), user_id, asset) for asset in ASSETS],
        )


def credit(
    conn: psycopg.Connection, user_id: str, asset: str, amount: int, kind: str, ref: LedgerRef
) -> int:
    """Add `amount` (> 0) to available; returns the new balance."""
    return _change(conn, user_id, asset, amount, 0, kind, ref)


def place_hold(conn: psycopg.Connection, user_id: str, asset: str, amount: int) -> None:
    """Move `amount` from available to hold, atomically, or raise InsufficientFunds.

    One conditional UPDATE: two concurrent holds that each fit but together do not can never
    both succeed (no read-then-write race).
    """
    _require_positive(amount)
    row = conn.execute(
        """UPDATE balances SET available = available - %(a)s, hold = hold + %(a)s
           WHERE user_id = %(u)s AND asset = %(s)s AND available >= %(a)s RETURNING 1""",
        {"a": amount, "u": user_id, "s": asset},
    ).fetchone()
    if row is None:
        raise InsufficientFunds(asset)


def _require_positive(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValueError(f"amount must be a positive int, got {amount!r}")


def _change(
    conn: psycopg.Connection,
    user_id: str,
    asset: str,
    d_available: int,
    d_hold: int,
    kind: str,
    ref: LedgerRef,
) -> int:
    if kind not in LEDGER_TYPES:
        raise ValueError(f"unknown ledger type {kind!r}")
    _require_positive(abs(d_available + d_hold))
    row = conn.execute(
        """UPDATE balances SET available = available + %(da)s, hold = hold + %(dh)s
           WHERE user_id = %(u)s AND asset = %(s)s
             AND available + %(da)s >= 0 AND hold + %(dh)s >= 0
           RETURNING id, available + hold""",
        {"da": d_available, "dh": d_hold, "u": user_id, "s": asset},
    ).fetchone()
    if row is None:
        raise InsufficientFunds(asset)
    balance_id, balance = row
    conn.execute(
        """INSERT INTO ledger_entries (balance_id, amount, balance, type, order_id, product_id,
             trade_id, transfer_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            balance_id,
            d_available + d_hold,
            balance,
            kind,
            ref.order_id,
            ref.product_id,
            ref.trade_id,
            ref.transfer_id,
        ),
    )
    return int(balance)


@dataclass(frozen=True, slots=True)
class Move:
    """One change of one (user, asset) row, for `moves_sql`.

    `available` and `hold` are signed deltas. A move that changes the balance (their sum is not
    zero) must name its ledger `kind` and `ref`; a pure hold release (available +x, hold -x)
    changes no balance and writes no ledger row.
    """

    user_id: str
    asset: str
    available: int
    hold: int
    kind: str | None = None
    ref: LedgerRef | None = None


@dataclass(frozen=True, slots=True)
class MovesSql:
    """Many moves as the parts of ONE statement (`moves_sql`): `ctes` are WITH items that lock,
    update and ledger the rows, with `params` for their placeholders in order; `check` is a
    select-list expression (no placeholders) that fails the statement with EX001 unless every
    summed row could take its moves. The caller puts the parts in a statement of its own (the
    matcher writes a whole batch so) and maps EX001 to InsufficientFunds with `FUNDS_CHECK`."""

    ctes: str
    params: list[object]
    check: str


def moves_sql(moves: list[Move]) -> MovesSql | None:
    """The statement parts of `moves` (None: there are none).

    The moves are summed per (user, asset); the statement locks those rows in (user, asset)
    order (so two writers touching the same accounts can never deadlock), updates them, and
    inserts the ledger row of every balance-changing move, in the given order, each carrying
    the balance just after it (the row's final balance minus the moves that follow it)."""
    if not moves:
        return None
    net: dict[tuple[str, str], list[int]] = {}
    ledger: list[list[object]] = [[] for _ in range(9)]
    for m in moves:
        key = (str(m.user_id), m.asset)
        if m.kind is None:
            if m.available + m.hold != 0:
                raise ValueError(f"a balance change needs a ledger type: {m!r}")
        elif m.kind not in LEDGER_TYPES:
            raise ValueError(f"unknown ledger type {m.kind!r}")
        else:
            ref = m.ref or LedgerRef()
            entry = (
                len(ledger[0]),
                key[0],
                key[1],
                m.available + m.hold,
                m.kind,
                ref.order_id,
                ref.product_id,
                ref.trade_id,
                ref.transfer_id,
            )
            for col, v in zip(ledger, entry, strict=True):
                col.append(v)
        d = net.setdefault(key, [0, 0])
        d[0] += m.available
        d[1] += m.hold
    keys = sorted(net)
    return MovesSql(
        """mv AS (
             SELECT * FROM unnest(%s::uuid[], %s::text[], %s::numeric[], %s::numeric[])
               AS mv(user_id, asset, da, dh)),
           mv_locked AS MATERIALIZED (
             SELECT b.id FROM balances b JOIN mv USING (user_id, asset)
             ORDER BY b.user_id, b.asset FOR UPDATE OF b),
           mv_upd AS (
             UPDATE balances b SET available = b.available + mv.da, hold = b.hold + mv.dh
             FROM mv, mv_locked
             WHERE mv_locked.id = b.id AND b.user_id = mv.user_id AND b.asset = mv.asset
               AND b.available + mv.da >= 0 AND b.hold + mv.dh >= 0
             RETURNING b.id, b.user_id, b.asset, b.available + b.hold AS balance),
           mv_ledger AS (
             SELECT * FROM unnest(%s::int4[], %s::uuid[], %s::text[], %s::numeric[], %s::text[],
                                  %s::uuid[], %s::text[], %s::int8[], %s::uuid[])
               AS l(i, user_id, asset, amount, type, order_id, product_id, trade_id,
                    transfer_id)),
           mv_ins AS (
             INSERT INTO ledger_entries (balance_id, amount, balance, type, order_id,
               product_id, trade_id, transfer_id)
             SELECT u.id, l.amount, u.balance - coalesce(sum(l.amount) OVER (
                      PARTITION BY l.user_id, l.asset ORDER BY l.i
                      ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0),
                    l.type, l.order_id, l.product_id, l.trade_id, l.transfer_id
             FROM mv_ledger l JOIN mv_upd u USING (user_id, asset) ORDER BY l.i)""",
        [
            array_text([k[0] for k in keys]),
            array_text([k[1] for k in keys]),
            array_text([net[k][0] for k in keys]),
            array_text([net[k][1] for k in keys]),
            *map(array_text, ledger),
        ],
        """write_check((SELECT count(*) FROM mv_upd) = (SELECT count(*) FROM mv), 'EX001',
             ((SELECT count(*) FROM mv) - (SELECT count(*) FROM mv_upd)) || ' of '
             || (SELECT count(*) FROM mv) || ' accounts short')""",
    )
