"""The batch's ONE statement: the fence, the order rows, the trades and the balance moves as
data-modifying WITH items, and a select list of their checks.

settlement.py decides what a batch writes; this module says how it is written. One statement is
one send to the server and, in autocommit, one transaction: it commits whole or not at all, and
its checks (`write_check`, migration 0006) abort it on the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from chalicelib.platform.db import array_text

if TYPE_CHECKING:
    from chalicelib.core.balances import MovesSql
    from matcher.books import OrderState


class Trade(NamedTuple):
    """A trade row as the batch inserts it (amounts in internal units)."""

    trade_id: int
    seq: int
    maker_order_id: str
    taker_order_id: str
    maker_side: str
    price: int  # quote units per whole base unit
    size: int  # base units
    funds: int  # quote units
    maker_fee: int
    taker_fee: int


def batch_statement(
    product_id: str,
    seq_before: int,
    seq_after: int,
    last_trade_before: int,
    last_trade_after: int,
    changed: list[OrderState],
    trades: list[Trade],
    moves: MovesSql | None,
) -> tuple[str, list[Any]]:
    """The batch's statement and its parameters: the fence, the order rows, the trades and the
    balance moves as data-modifying WITH items, and a select list of their checks, fence first.

    The checks read the items they check, and Postgres runs an item when it is first read: so
    the fence's UPDATE runs (and locks the product's row) before anything else, and a stale
    matcher's statement stops there. Items nothing reads (the inserts) run at the end."""
    ctes = [
        """fence AS (
             UPDATE product_state
             SET last_seq = %s, last_trade_id = %s, updated_at = now()
             WHERE product_id = %s AND last_seq = %s AND last_trade_id = %s
             RETURNING now() AS at)"""
    ]
    params: list[Any] = [seq_after, last_trade_after, product_id, seq_before, last_trade_before]
    checks = ["write_check((SELECT count(*) FROM fence) = 1, 'EX002', 'fenced: ' || %s)"]
    check_params: list[Any] = [product_id]
    if changed:
        ctes.append(_ORDERS_CTE)
        params += _orders_params(changed)
        checks.append(
            """write_check((SELECT count(*) FROM changed_orders) = %s, 'EX003',
                 (%s - (SELECT count(*) FROM changed_orders)) || ' order(s) were no longer live')"""
        )
        check_params += [len(changed), len(changed)]
    if trades:
        ctes.append(_TRADES_CTE)
        params += _trades_params(product_id, trades)
    if moves is not None:
        ctes.append(moves.ctes)
        params += moves.params
        checks.append(moves.check)
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(checks)}, (SELECT max(at) FROM fence)"
    return sql, params + check_params


# Every changed order must still be live (pending or open) in Postgres: else EX003
# (`batch_statement`).
# The rows are found by primary key, whatever the statistics say (with `key_lookups_only`).
# Written as `o.status IN ('pending', 'open')`, the condition matches the partial index
# `orders_live`, and a planner that believes there are few live orders (a table not analyzed
# since it grew) reads every live order of every product for each batch instead of the batch's
# own. `NOT IN ('done', 'rejected')` says the same (the status CHECK
# allows only these four) without offering that index, and `o.id = ANY(...)` gives the primary
# key a condition of its own.
_ORDERS_CTE = """changed_orders AS (
           UPDATE orders o SET status = ch.status, done_reason = ch.done_reason,
             reject_reason = ch.reject_reason, hold_amount = ch.hold_amount,
             filled_size = ch.filled_size, executed_value = ch.executed_value,
             fill_fees = ch.fill_fees, stp_size = ch.stp_size, seq = ch.seq,
             accepted_seq = ch.accepted_seq, cancel_seq = ch.cancel_seq,
             done_at = CASE WHEN ch.done THEN now() ELSE o.done_at END
           FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::numeric[],
                       %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::int8[],
                       %s::int8[], %s::int8[], %s::bool[])
             AS ch(id, status, done_reason, reject_reason, hold_amount, filled_size,
                   executed_value, fill_fees, stp_size, seq, accepted_seq, cancel_seq, done)
           WHERE o.id = ch.id AND o.id = ANY(%s::uuid[])
             AND o.status NOT IN ('done', 'rejected')
           RETURNING 1)"""


def _orders_params(changed: list[OrderState]) -> list[str]:
    cols: list[list[Any]] = [[] for _ in range(13)]
    for o in changed:
        values = (
            o.id,
            o.status,
            o.done_reason,
            o.reject_reason,
            o.hold_amount,
            o.filled_size,
            o.executed_value,
            o.fill_fees,
            o.stp_size,
            o.seq,
            o.accepted_seq,
            o.cancel_seq,
            o.status in ("done", "rejected"),
        )
        for col, v in zip(cols, values, strict=True):
            col.append(v)
    arrays = [array_text(col) for col in cols]  # arrays[0]: the ids
    return [*arrays, arrays[0]]


_TRADES_CTE = """new_trades AS (
           INSERT INTO trades (product_id, trade_id, seq, maker_order_id, taker_order_id,
             maker_side, price, size, funds, maker_fee, taker_fee)
           SELECT %s, * FROM unnest(%s::int8[], %s::int8[], %s::uuid[], %s::uuid[], %s::text[],
             %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[]))"""


def _trades_params(product_id: str, trades: list[Trade]) -> list[str]:
    cols: list[list[Any]] = [[] for _ in range(10)]
    for t in trades:
        for col, v in zip(cols, t, strict=True):
            col.append(v)
    return [product_id, *map(array_text, cols)]
