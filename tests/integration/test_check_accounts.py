"""`exchange check` proves every account, not only every asset's total (matcher/account_proof.py,
checks 6 and 7 of matcher/check.py).

Each test settles real trades through the matcher (the `flow` fixture: a database of its own).
The first checks that every source of an account is counted; each of the others then plants one
misrouting of funds the way a settlement bug would write it: the balances and the ledger rows
agree with each other, so every asset's total, every balance's ledger sum, the trades and the
replay all still pass, and only the per-account proof sees it.
"""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.core import balances
from chalicelib.core.catalog import fee_account
from chalicelib.trading import faucet
from matcher.check import Report, run_check
from tests.integration.orderflow import Flow, settled_trade, units, write_moves

PID = "BTC-USD"
NEW_CHECKS = ("[accounts]", "[trade ledger]")


def _misrouted(flow: Flow) -> Report:
    """The check's report, which must find the planted misrouting and nothing the checks
    before the per-account proof could see (they pass on it: the misrouting is invisible
    to them)."""
    report = run_check(flow.cfg.database_url, save=False)
    assert not report.ok
    assert all(v.startswith(NEW_CHECKS) for v in report.violations), report.text()
    return report


def _has(report: Report, check: str, *parts: str) -> bool:
    return any(v.startswith(f"[{check}]") and all(p in v for p in parts) for v in report.violations)


def _balance_id(flow: Flow, user_id: str, asset: str) -> str:
    row = flow.conn.execute(
        "SELECT id FROM balances WHERE user_id = %s AND asset = %s", (user_id, asset)
    ).fetchone()
    assert row is not None
    return str(row[0])


def _ledger_row(
    flow: Flow, trade: dict[str, Any], user_id: str, asset: str, kind: str, order_id: str
) -> tuple[int, int]:
    """(id, amount) of the trade's one ledger row of this account, asset, type and order."""
    (row,) = flow.conn.execute(
        """SELECT l.id, l.amount FROM ledger_entries l JOIN balances b ON b.id = l.balance_id
           WHERE l.product_id = %s AND l.trade_id = %s AND b.user_id = %s AND b.asset = %s
             AND l.type = %s AND l.order_id = %s""",
        (trade["product_id"], trade["trade_id"], user_id, asset, kind, order_id),
    ).fetchall()
    return int(row[0]), int(row[1])


def _move(flow: Flow, asset: str, amount: int, source: str, target: str) -> None:
    """Move `amount` of available funds from one account to another, writing no ledger row."""
    for user_id, delta in ((source, -amount), (target, amount)):
        flow.conn.execute(
            "UPDATE balances SET available = available + %s WHERE user_id = %s AND asset = %s",
            (delta, user_id, asset),
        )


def _rehome(flow: Flow, entry_id: int, user_id: str, asset: str) -> None:
    flow.conn.execute(
        "UPDATE ledger_entries SET balance_id = %s WHERE id = %s",
        (_balance_id(flow, user_id, asset), entry_id),
    )


def test_every_source_of_an_account_is_counted(flow: Flow) -> None:
    """Deposits, faucet grants, completed and pending withdrawals (their fee included), and
    trades with fees on both sides, a market order's among them: every account checks out."""
    s = settled_trade(flow)
    with flow.conn.transaction():
        faucet.grant(flow.conn, s.seller, "USD", "250.00")
    withdrawn, pending = str(uuid.uuid4()), str(uuid.uuid4())
    amount, fee = units("0.05", "BTC"), units("0.0001", "BTC")
    with flow.conn.transaction():
        for wid, status in ((withdrawn, "completed"), (pending, "pending")):
            flow.conn.execute(
                """INSERT INTO withdrawals (id, user_id, asset, amount, fee, address, status)
                   VALUES (%s, %s, 'BTC', %s, %s, 'bc1qexample', %s)""",
                (wid, s.buyer, amount, fee, status),
            )
        write_moves(
            flow.conn,
            [
                balances.Move(
                    s.buyer,
                    "BTC",
                    -(amount + fee),
                    0,
                    "transfer",
                    balances.LedgerRef(transfer_id=withdrawn),
                ),
                balances.Move(s.buyer, "BTC", -(amount + fee), amount + fee),  # the pending hold
            ],
        )
    flow.place(s.buyer, PID, "buy", funds="1000.00")  # a market buy against the rest of the ask
    flow.run()
    assert len(flow.trades(PID)) == 2

    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()
    assert report.counts["accounts"] > 0


def test_the_base_credited_to_the_maker_instead_of_the_taker_is_reported(flow: Flow) -> None:
    s = settled_trade(flow)
    size = s.trade["size"]
    taker_order = s.trade["taker_order_id"]
    entry, _ = _ledger_row(flow, s.trade, s.buyer, "BTC", "match", taker_order)
    _move(flow, "BTC", size, s.buyer, s.seller)
    _rehome(flow, entry, s.seller, "BTC")

    report = _misrouted(flow)
    assert _has(report, "accounts", f"account {s.buyer}/BTC: balance 0 ", f"trades {size}")
    assert _has(report, "accounts", f"account {s.seller}/BTC: balance ")
    trade = f"{PID} trade {s.trade['trade_id']}"
    assert _has(
        report, "trade ledger", f"{trade}: account {s.buyer}/BTC: missing match row of {size}"
    )
    assert _has(
        report, "trade ledger", f"{trade}: account {s.seller}/BTC: unexpected match row of {size}"
    )


def test_a_fee_credited_to_another_products_fee_account_is_reported(flow: Flow) -> None:
    s = settled_trade(flow)
    fee = s.trade["taker_fee"]
    assert fee > 0
    ours, theirs = fee_account(PID), fee_account("ETH-USD")
    entry, _ = _ledger_row(flow, s.trade, ours, "USD", "fee", s.trade["taker_order_id"])
    _move(flow, "USD", fee, ours, theirs)
    _rehome(flow, entry, theirs, "USD")

    report = _misrouted(flow)
    assert _has(report, "accounts", f"account {ours}/USD: balance ")
    assert _has(report, "accounts", f"account {theirs}/USD: balance {fee} ", "trades 0 = 0")
    trade = f"{PID} trade {s.trade['trade_id']}"
    assert _has(report, "trade ledger", f"{trade}: account {ours}/USD: missing fee row of {fee}")
    assert _has(
        report, "trade ledger", f"{trade}: account {theirs}/USD: unexpected fee row of {fee}"
    )


def test_a_quote_amount_moved_between_the_parties_is_reported(flow: Flow) -> None:
    """The seller is paid a dollar less and the buyer charged a dollar less."""
    s = settled_trade(flow)
    dollar = units("1", "USD")
    funds = s.trade["funds"]
    paid, _ = _ledger_row(flow, s.trade, s.seller, "USD", "match", s.trade["maker_order_id"])
    charged, _ = _ledger_row(flow, s.trade, s.buyer, "USD", "match", s.trade["taker_order_id"])
    _move(flow, "USD", dollar, s.seller, s.buyer)
    flow.conn.execute(
        "UPDATE ledger_entries SET amount = amount - %s WHERE id = %s", (dollar, paid)
    )
    flow.conn.execute(
        "UPDATE ledger_entries SET amount = amount + %s WHERE id = %s", (dollar, charged)
    )

    report = _misrouted(flow)
    assert _has(report, "accounts", f"account {s.seller}/USD: balance ")
    assert _has(report, "accounts", f"account {s.buyer}/USD: balance ")
    trade = f"{PID} trade {s.trade['trade_id']}"
    assert _has(report, "trade ledger", f"{trade}: account {s.seller}/USD: missing match row")
    assert _has(
        report,
        "trade ledger",
        f"{trade}: account {s.buyer}/USD: unexpected match row of {-funds + dollar}",
    )


def test_a_trade_missing_one_ledger_row_is_reported(flow: Flow) -> None:
    """The buyer's fee row is missing, its amount folded into the buyer's match row: each
    balance still equals its ledger's sum, and every balance is right."""
    s = settled_trade(flow)
    taker_order = s.trade["taker_order_id"]
    fee_row, fee = _ledger_row(flow, s.trade, s.buyer, "USD", "fee", taker_order)
    match_row, _ = _ledger_row(flow, s.trade, s.buyer, "USD", "match", taker_order)
    flow.conn.execute("DELETE FROM ledger_entries WHERE id = %s", (fee_row,))
    flow.conn.execute(
        "UPDATE ledger_entries SET amount = amount + %s WHERE id = %s", (fee, match_row)
    )

    report = _misrouted(flow)
    assert not report.failed("accounts"), report.text()
    trade = f"{PID} trade {s.trade['trade_id']}"
    assert _has(
        report,
        "trade ledger",
        f"{trade}: account {s.buyer}/USD: missing fee row of {fee} for order {taker_order}",
    )


def test_a_ledger_row_of_a_trade_on_the_wrong_account_is_reported(flow: Flow) -> None:
    """Two equal trades whose buyers' base rows have swapped accounts: every balance is right
    and equals its ledger's sum, but each trade's row names the other trade's buyer."""
    seller = flow.user(BTC="1")
    first, second = flow.user(USD="100000"), flow.user(USD="100000")
    flow.place(seller, PID, "sell", "30000.00", "0.5")
    flow.place(first, PID, "buy", "30000.00", "0.2")
    flow.run()
    flow.place(second, PID, "buy", "30000.00", "0.2")
    flow.run()
    one, two = flow.trades(PID)
    assert run_check(flow.cfg.database_url).ok
    a, _ = _ledger_row(flow, one, first, "BTC", "match", one["taker_order_id"])
    b, _ = _ledger_row(flow, two, second, "BTC", "match", two["taker_order_id"])
    _rehome(flow, a, second, "BTC")
    _rehome(flow, b, first, "BTC")

    report = _misrouted(flow)
    assert not report.failed("accounts"), report.text()
    size = one["size"]
    for trade, owner, other in ((one, first, second), (two, second, first)):
        name = f"{PID} trade {trade['trade_id']}"
        assert _has(report, "trade ledger", f"{name}: account {owner}/BTC: missing match row")
        assert _has(
            report,
            "trade ledger",
            f"{name}: account {other}/BTC: unexpected match row of {size} "
            f"for order {trade['taker_order_id']}",
        )
