"""`balances.moves_sql`, the matcher's batch balance write, on a real Postgres."""

from __future__ import annotations

import pytest

from chalicelib.core.balances import FUNDS_CHECK, InsufficientFunds, LedgerRef, Move
from chalicelib.platform.db import write_checks
from tests.integration.orderflow import Bal, Flow, units, write_moves


def _ledger(flow: Flow, user: str) -> list[tuple[int, int, str]]:
    rows = flow.conn.execute(
        """SELECT l.amount, l.balance, l.type FROM ledger_entries l
           JOIN balances b ON b.id = l.balance_id
           WHERE b.user_id = %s AND b.asset = 'USD' ORDER BY l.id""",
        (user,),
    ).fetchall()
    return [(int(a), int(b), t) for a, b, t in rows]


def test_an_overdraft_raises_and_the_transaction_writes_nothing(flow: Flow) -> None:
    user = flow.user(USD="10")
    before = _ledger(flow, user)
    ref = LedgerRef(product_id="BTC-USD")
    moves = [
        Move(user, "USD", -units("6", "USD"), 0, "match", ref),
        Move(user, "USD", -units("5", "USD"), 0, "fee", ref),
    ]
    with pytest.raises(InsufficientFunds), flow.conn.transaction():
        write_moves(flow.conn, moves)
    assert flow.bal(user, "USD") == Bal(units("10", "USD"), 0)
    assert _ledger(flow, user) == before


def test_in_pipeline_mode_an_overdraft_aborts_the_implicit_transaction_at_the_sync(
    flow: Flow,
) -> None:
    user = flow.user(USD="10")
    ref = LedgerRef(product_id="BTC-USD")
    moves = [
        Move(user, "USD", -units("6", "USD"), 0, "match", ref),
        Move(user, "USD", -units("1", "USD"), units("1", "USD")),  # a hold, no ledger row
        Move(user, "USD", -units("2", "USD"), 0, "fee", ref),
    ]
    with write_checks(FUNDS_CHECK), flow.conn.pipeline() as pipe:
        write_moves(flow.conn, moves)
        pipe.sync()
    assert flow.bal(user, "USD") == Bal(units("1", "USD"), units("1", "USD"))
    # Each ledger row carries the balance (available + hold) just after it.
    assert _ledger(flow, user)[-2:] == [
        (-units("6", "USD"), units("4", "USD"), "match"),
        (-units("2", "USD"), units("2", "USD"), "fee"),
    ]

    # The statement before it in the same implicit transaction is rolled back with it.
    overdraft = [Move(user, "USD", -units("7", "USD"), 0, "fee", ref)]
    credit = [Move(user, "USD", units("5", "USD"), 0, "transfer", ref)]
    with pytest.raises(InsufficientFunds), write_checks(FUNDS_CHECK), flow.conn.pipeline() as pipe:
        write_moves(flow.conn, credit)
        write_moves(flow.conn, overdraft)
        pipe.sync()
    assert flow.bal(user, "USD") == Bal(units("1", "USD"), units("1", "USD"))
