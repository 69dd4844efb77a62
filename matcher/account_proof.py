"""`exchange check`'s proof of every account (checks 6 and 7 of matcher/check.py).

The per-asset totals (conservation) and the per-balance ledger sums (check 3) cannot see funds
that reach the wrong account: the base credited to the maker instead of the taker, a fee paid
into another product's fee account. The totals are unchanged, and the ledger rows come from the
same moves as the balances, so they agree with them. These two queries recompute both from the
source tables instead, in SQL of their own (not from the ledger, nor with settlement's code):

6. accounts: for every (account, asset), available + hold == completed deposits (the faucet's
   grants are completed deposits too, chalicelib/trading/faucet.py) - completed withdrawals
   (amount + fee: what left the user; a pending one is still in the balance, as its hold)
   + the signed effect of every trade on it. A trade is read with both its orders: the buyer
   gains base `size` and pays quote `funds` + its fee, the seller gives base `size` and gains
   quote `funds` - its fee; the maker's fee is `maker_fee`, the taker's `taker_fee`, and each
   fee is credited to the product's fee account (chalicelib.core.catalog.fee_account).
7. trade ledger: each trade has exactly its ledger rows, no more, no fewer. For each of its
   orders, all naming the trade (product_id, trade_id), that order and no transfer: a buyer's
   quote -funds (match), quote -fee (fee) and base +size (match); a seller's base -size (match),
   quote +funds (match) and quote -fee (fee); the product's fee account's quote +fee (fee).
   A fee row is written only for a fee that is not zero. The ledger rows checked are those
   that name a trade or are of type match.

Each is one aggregate query over whole tables, run in check's REPEATABLE READ snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from chalicelib.core.catalog import FEE_ACCOUNTS
from chalicelib.platform.db import array_text

if TYPE_CHECKING:
    from matcher.check import Report

# One row per side of every trade: the order and account of that side, the fee it paid, and
# the product's assets and fee account. A trade whose order is missing loses that side (check 4
# reports the trade itself); a product with no fee account gives a NULL one, reported as such.
_SIDES = """fee_accounts AS (
           SELECT * FROM unnest(%(products)s::text[], %(fee_users)s::uuid[])
             AS f(product_id, user_id)),
         sides AS (
           SELECT t.product_id, t.trade_id, o.id AS order_id, o.user_id, o.side,
                  p.base_asset AS base, p.quote_asset AS quote, t.size, t.funds, s.fee,
                  f.user_id AS fee_user
           FROM trades t
           JOIN products p ON p.id = t.product_id
           LEFT JOIN fee_accounts f ON f.product_id = t.product_id
           CROSS JOIN LATERAL (VALUES (t.maker_order_id, t.maker_fee),
                                      (t.taker_order_id, t.taker_fee)) AS s(order_id, fee)
           JOIN orders o ON o.id = s.order_id)"""

_ACCOUNTS = f"""WITH {_SIDES},
         flows AS (
           SELECT user_id, asset, 'balance' AS src, available + hold AS amount FROM balances
           UNION ALL
           SELECT user_id, asset, 'deposits', amount FROM deposits WHERE status = 'completed'
           UNION ALL
           SELECT user_id, asset, 'withdrawals', -(amount + fee) FROM withdrawals
           WHERE status = 'completed'
           UNION ALL
           SELECT e.user_id, e.asset, 'trades', e.amount
           FROM sides s CROSS JOIN LATERAL (VALUES
             (s.user_id, s.base, CASE s.side WHEN 'buy' THEN s.size ELSE -s.size END),
             (s.user_id, s.quote, CASE s.side WHEN 'buy' THEN -s.funds ELSE s.funds END - s.fee),
             (s.fee_user, s.quote, s.fee)) AS e(user_id, asset, amount)
           WHERE e.amount <> 0)
       SELECT user_id, asset, count(*) FILTER (WHERE src = 'balance'),
              coalesce(sum(amount) FILTER (WHERE src = 'balance'), 0),
              coalesce(sum(amount) FILTER (WHERE src = 'deposits'), 0),
              coalesce(-sum(amount) FILTER (WHERE src = 'withdrawals'), 0),
              coalesce(sum(amount) FILTER (WHERE src = 'trades'), 0)
       FROM flows GROUP BY user_id, asset
       HAVING count(*) FILTER (WHERE src = 'balance') <> 1
           OR sum(amount) FILTER (WHERE src = 'balance')
              <> coalesce(sum(amount) FILTER (WHERE src <> 'balance'), 0)
       ORDER BY user_id, asset LIMIT 100"""

# +1 for every row the trades call for, -1 for every ledger row of a trade: what does not sum
# to zero per (trade, order, account, asset, type, amount) is missing (> 0) or extra (< 0).
_TRADE_LEDGER = f"""WITH {_SIDES},
         ledger_rows AS (
           SELECT s.product_id, s.trade_id, s.order_id, r.user_id, r.asset, r.type, r.amount,
                  NULL::uuid AS transfer_id, 1 AS n
           FROM sides s CROSS JOIN LATERAL (VALUES
             (s.user_id, s.base, 'match', CASE s.side WHEN 'buy' THEN s.size ELSE -s.size END),
             (s.user_id, s.quote, 'match', CASE s.side WHEN 'buy' THEN -s.funds ELSE s.funds END),
             (s.user_id, s.quote, 'fee', -s.fee),
             (s.fee_user, s.quote, 'fee', s.fee)) AS r(user_id, asset, type, amount)
           WHERE r.amount <> 0
           UNION ALL
           SELECT l.product_id, l.trade_id, l.order_id, b.user_id, b.asset, l.type, l.amount,
                  l.transfer_id, -1
           FROM ledger_entries l LEFT JOIN balances b ON b.id = l.balance_id
           WHERE l.trade_id IS NOT NULL OR l.type = 'match')
       SELECT product_id, trade_id, user_id, asset, type, amount, order_id, transfer_id, sum(n)
       FROM ledger_rows
       GROUP BY product_id, trade_id, order_id, user_id, asset, type, amount, transfer_id
       HAVING sum(n) <> 0
       ORDER BY product_id, trade_id, user_id, asset LIMIT 100"""


def _params() -> dict[str, str]:
    return {
        "products": array_text(FEE_ACCOUNTS),
        "fee_users": array_text(FEE_ACCOUNTS.values()),
    }


def check_accounts(conn: psycopg.Connection, report: Report) -> None:
    """Check 6: every account's balance of every asset, recomputed from its sources."""
    for user_id, asset, rows, balance, deposits, withdrawals, trades in conn.execute(
        _ACCOUNTS, _params()
    ):
        expected = deposits - withdrawals + trades
        if rows == 0:
            report.bad(
                "accounts",
                f"account {user_id}/{asset} has no balance row, its sources sum to {expected}",
            )
            continue
        report.bad(
            "accounts",
            f"account {user_id}/{asset}: balance {balance} != deposits {deposits} - "
            f"withdrawals {withdrawals} + trades {trades} = {expected}",
        )
    row = conn.execute("SELECT count(*) FROM balances").fetchone()
    report.counts["accounts"] = int(row[0]) if row else 0


def check_trade_ledger(conn: psycopg.Connection, report: Report) -> None:
    """Check 7: every trade's ledger rows are exactly the ones it calls for."""
    found = conn.execute(_TRADE_LEDGER, _params()).fetchall()
    for product_id, trade_id, user_id, asset, kind, amount, order_id, transfer_id, n in found:
        what = "missing" if n > 0 else "unexpected"
        times = f" ({abs(n)} times)" if abs(n) > 1 else ""
        trade = f"{product_id} trade {trade_id}" if trade_id is not None else "no trade"
        extra = f", transfer {transfer_id}" if transfer_id is not None else ""
        report.bad(
            "trade ledger",
            f"{trade}: account {user_id}/{asset}: {what} {kind} row of {amount} for order "
            f"{order_id}{extra}{times}",
        )
