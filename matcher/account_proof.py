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

Each is one aggregate query over whole tables, run in check's REPEATABLE READ snapshot; when
check 7 finds trades whose rows are wrong, one more query compares those trades' rows one by one
to say which rows are missing or extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from chalicelib.core.catalog import FEE_ACCOUNTS
from chalicelib.platform.db import array_text

if TYPE_CHECKING:
    from matcher.check import Report

# Every trade with both its orders, then one row per side of it: the order and account of that
# side, the fee it paid (`bit` numbers the side for check 7), and the product's assets and fee
# account. A trade whose order is missing is left out (check 4 reports the trade itself, and
# both checks here see the rows it moved); a product with no fee account gives a NULL one.
# Joined per trade rather than per side, the orders are read by hash, not by one index probe
# per side.
_SIDES = """fee_accounts AS (
           SELECT * FROM unnest(%(products)s::text[], %(fee_users)s::uuid[])
             AS f(product_id, user_id)),
         traded AS (
           SELECT t.product_id, t.trade_id, t.size, t.funds, t.maker_fee, t.taker_fee,
                  p.base_asset AS base, p.quote_asset AS quote, f.user_id AS fee_user,
                  m.id AS maker_order, m.user_id AS maker, m.side AS maker_side,
                  k.id AS taker_order, k.user_id AS taker, k.side AS taker_side
           FROM trades t
           JOIN products p ON p.id = t.product_id
           JOIN orders m ON m.id = t.maker_order_id
           JOIN orders k ON k.id = t.taker_order_id
           LEFT JOIN fee_accounts f ON f.product_id = t.product_id),
         sides AS (
           SELECT t.product_id, t.trade_id, t.base, t.quote, t.size, t.funds, t.fee_user, s.*
           FROM traded t CROSS JOIN LATERAL (VALUES
             (t.maker_order, t.maker, t.maker_side, t.maker_fee, 1),
             (t.taker_order, t.taker, t.taker_side, t.taker_fee, 16))
             AS s(order_id, user_id, side, fee, bit))"""

_ACCOUNTS = f"""WITH {_SIDES},
         flows AS (
           SELECT user_id, asset, 'balance' AS src, available + hold AS amount FROM balances
           UNION ALL
           SELECT user_id, asset, 'deposits', amount FROM deposits WHERE status = 'completed'
           UNION ALL
           SELECT user_id, asset, 'withdrawals', -(amount + fee) FROM withdrawals
           WHERE status = 'completed'
           UNION ALL
           SELECT e.user_id, e.asset, 'trades', sum(e.amount)
           FROM sides s CROSS JOIN LATERAL (VALUES
             (s.user_id, s.base, CASE s.side WHEN 'buy' THEN s.size ELSE -s.size END),
             (s.user_id, s.quote, CASE s.side WHEN 'buy' THEN -s.funds ELSE s.funds END - s.fee),
             (s.fee_user, s.quote, s.fee)) AS e(user_id, asset, amount)
           WHERE e.amount <> 0
           GROUP BY e.user_id, e.asset)
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

# Check 7 finds the trades whose ledger rows are wrong without sorting the ledger's rows by
# all their columns: each ledger row of a trade is matched to the one row of its trade it can
# be (by its order: the side; by account, asset, type and amount: which of the side's up to
# four rows), numbered by a bit (side 1 or 16 times 1 base, 2 quote, 4 fee, 8 the fee
# account's fee), 256 if it is none of them. A trade's rows are exactly right when their bits
# together are the ones its fees call for and there are as many rows as bits: so no row is
# missing, none is there twice, and none is foreign. The ledger rows checked are
# those that name a trade or are of type match.
_TRADES_WRONG = f"""WITH {_SIDES},
         roles AS (
           SELECT l.product_id, l.trade_id, CASE
             WHEN l.transfer_id IS NOT NULL OR s.bit IS NULL THEN 256
             WHEN b.user_id = s.user_id AND b.asset = s.base AND l.type = 'match'
                  AND l.amount = CASE s.side WHEN 'buy' THEN s.size ELSE -s.size END
               THEN s.bit
             WHEN b.user_id = s.user_id AND b.asset = s.quote AND l.type = 'match'
                  AND l.amount = CASE s.side WHEN 'buy' THEN -s.funds ELSE s.funds END
               THEN 2 * s.bit
             WHEN b.user_id = s.user_id AND b.asset = s.quote AND l.type = 'fee'
                  AND l.amount = -s.fee
               THEN 4 * s.bit
             WHEN b.user_id = s.fee_user AND b.asset = s.quote AND l.type = 'fee'
                  AND l.amount = s.fee
               THEN 8 * s.bit
             ELSE 256 END AS bit
           FROM ledger_entries l
           LEFT JOIN balances b ON b.id = l.balance_id
           LEFT JOIN sides s ON s.product_id = l.product_id AND s.trade_id = l.trade_id
             AND s.order_id = l.order_id
           WHERE l.trade_id IS NOT NULL OR l.type = 'match'),
         found AS (
           SELECT product_id, trade_id, count(*) AS n, bit_or(bit) AS bits
           FROM roles GROUP BY product_id, trade_id),
         wanted AS (
           SELECT product_id, trade_id,
                  51 | CASE WHEN maker_fee > 0 THEN 12 ELSE 0 END
                     | CASE WHEN taker_fee > 0 THEN 192 ELSE 0 END AS bits,
                  4 + CASE WHEN maker_fee > 0 THEN 2 ELSE 0 END
                    + CASE WHEN taker_fee > 0 THEN 2 ELSE 0 END AS n
           FROM trades)
       SELECT coalesce(w.product_id, f.product_id), coalesce(w.trade_id, f.trade_id)
       FROM wanted w
       FULL JOIN found f ON f.product_id = w.product_id AND f.trade_id = w.trade_id
       WHERE f.n IS NULL OR w.n IS NULL OR f.bits <> w.bits OR f.n <> w.n
       ORDER BY 1, 2 LIMIT 100"""

# The rows that differ, for the trades `_TRADES_WRONG` found (by trade id, of any product; and
# the match rows that name no trade, with `untraded`): +1 for every row the trades call for,
# -1 for every ledger row, summed per (trade, order, account, asset, type, amount); what is
# not zero is missing (> 0) or extra (< 0).
_TRADE_ROWS_DIFF = f"""WITH {_SIDES},
         ledger_rows AS (
           SELECT s.product_id, s.trade_id, s.order_id, r.user_id, r.asset, r.type, r.amount,
                  NULL::uuid AS transfer_id, 1 AS n
           FROM sides s CROSS JOIN LATERAL (VALUES
             (s.user_id, s.base, 'match', CASE s.side WHEN 'buy' THEN s.size ELSE -s.size END),
             (s.user_id, s.quote, 'match', CASE s.side WHEN 'buy' THEN -s.funds ELSE s.funds END),
             (s.user_id, s.quote, 'fee', -s.fee),
             (s.fee_user, s.quote, 'fee', s.fee)) AS r(user_id, asset, type, amount)
           WHERE r.amount <> 0 AND s.trade_id = ANY(%(trade_ids)s::int8[])
           UNION ALL
           SELECT l.product_id, l.trade_id, l.order_id, b.user_id, b.asset, l.type, l.amount,
                  l.transfer_id, -1
           FROM ledger_entries l LEFT JOIN balances b ON b.id = l.balance_id
           WHERE l.trade_id = ANY(%(trade_ids)s::int8[])
              OR (%(untraded)s AND l.trade_id IS NULL AND l.type = 'match'))
       SELECT product_id, trade_id, user_id, asset, type, amount, order_id, transfer_id, sum(n)
       FROM ledger_rows
       GROUP BY product_id, trade_id, order_id, user_id, asset, type, amount, transfer_id
       HAVING sum(n) <> 0
       ORDER BY product_id, trade_id, user_id, asset LIMIT 100"""


def _params() -> dict[str, object]:
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
    wrong = conn.execute(_TRADES_WRONG, _params()).fetchall()
    if not wrong:
        return
    params = _params()
    params["trade_ids"] = array_text(t for _, t in wrong if t is not None)
    params["untraded"] = any(t is None for _, t in wrong)
    explained = set()
    found = conn.execute(_TRADE_ROWS_DIFF, params).fetchall()
    for product_id, trade_id, user_id, asset, kind, amount, order_id, transfer_id, n in found:
        explained.add((product_id, trade_id))
        what = "missing" if n > 0 else "unexpected"
        times = f" ({abs(n)} times)" if abs(n) > 1 else ""
        extra = f", transfer {transfer_id}" if transfer_id is not None else ""
        report.bad(
            "trade ledger",
            f"{_trade(product_id, trade_id)}: account {user_id}/{asset}: {what} {kind} row of "
            f"{amount} for order {order_id}{extra}{times}",
        )
    for product_id, trade_id in wrong:
        if (product_id, trade_id) not in explained:
            report.bad(
                "trade ledger",
                f"{_trade(product_id, trade_id)}: its ledger rows are not the ones it calls for",
            )


def _trade(product_id: str | None, trade_id: int | None) -> str:
    return f"{product_id} trade {trade_id}" if trade_id is not None else "a match row of no trade"
