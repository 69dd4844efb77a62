"""`exchange check` verifies the references of trades and ledger rows to orders, products and
balances, which no foreign key checks (migrations 0007 and 0008; matcher/check.py, checks 3
and 4).

Each test runs a matcher in-process on a database of its own (the `flow` fixture), so it may
corrupt rows freely.
"""

from __future__ import annotations

import uuid

from matcher.check import run_check
from tests.integration.orderflow import Flow, settled_trade

PID = "BTC-USD"


def _trade(flow: Flow) -> int:
    return int(settled_trade(flow).trade["trade_id"])


def _problems(flow: Flow, check: str) -> list[str]:
    report = run_check(flow.cfg.database_url, save=False)
    return [v for v in report.violations if v.startswith(f"[{check}")]


def test_a_trade_naming_a_missing_order_is_reported(flow: Flow) -> None:
    trade_id = _trade(flow)
    flow.conn.execute(
        "UPDATE trades SET maker_order_id = %s WHERE product_id = %s AND trade_id = %s",
        (str(uuid.uuid4()), PID, trade_id),
    )
    problems = _problems(flow, "trades")
    assert any(
        f"trade {trade_id}: its maker, taker or product does not exist" in p for p in problems
    ), problems


def test_a_trade_naming_an_order_of_another_product_is_reported(flow: Flow) -> None:
    trade_id = _trade(flow)
    other = flow.place(flow.user(ETH="1"), "ETH-USD", "sell", "2000.00", "0.1")
    flow.conn.execute(
        "UPDATE trades SET taker_order_id = %s WHERE product_id = %s AND trade_id = %s",
        (other, PID, trade_id),
    )
    problems = _problems(flow, "trades")
    assert any(f"trade {trade_id}: an order of another product" in p for p in problems), problems


def test_a_ledger_row_naming_a_missing_order_or_product_is_reported(flow: Flow) -> None:
    _trade(flow)
    ids = [
        int(r[0])
        for r in flow.conn.execute(
            "SELECT id FROM ledger_entries WHERE order_id IS NOT NULL ORDER BY id LIMIT 2"
        ).fetchall()
    ]
    ghost = str(uuid.uuid4())
    flow.conn.execute("UPDATE ledger_entries SET order_id = %s WHERE id = %s", (ghost, ids[0]))
    # A product that was never listed: possible only because no foreign key checks it.
    flow.conn.execute("UPDATE ledger_entries SET product_id = 'DOGE-USD' WHERE id = %s", (ids[1],))
    problems = _problems(flow, "ledger")
    assert any(f"ledger entry {ids[0]} names order {ghost}" in p for p in problems), problems
    assert any(f"ledger entry {ids[1]} names product DOGE-USD" in p for p in problems), problems


def test_a_ledger_row_naming_a_missing_balance_is_reported(flow: Flow) -> None:
    _trade(flow)
    (entry_id,) = flow.conn.execute("SELECT max(id) FROM ledger_entries").fetchone()
    ghost = str(uuid.uuid4())
    # Possible only because no foreign key checks it (migration 0008).
    flow.conn.execute("UPDATE ledger_entries SET balance_id = %s WHERE id = %s", (ghost, entry_id))
    problems = _problems(flow, "ledger")
    assert any(f"ledger entry {entry_id} names balance {ghost}" in p for p in problems), problems
