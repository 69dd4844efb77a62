"""`exchange check` replays each product from its last checkpoint, and a checkpoint never hides a
later rewrite of the history it covers (matcher/check.py, migration 0005).

Each test runs a matcher in-process on a database of its own (the `flow` fixture), so it may
corrupt rows freely.
"""

from __future__ import annotations

import pytest

from matcher.check import Report, run_check
from tests.integration.orderflow import Flow

PID = "BTC-USD"


def _state(flow: Flow) -> tuple[int, int]:
    row = flow.conn.execute(
        "SELECT last_seq, last_trade_id FROM product_state WHERE product_id = %s", (PID,)
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _checkpoint(flow: Flow) -> tuple[int, int] | None:
    row = flow.conn.execute(
        "SELECT seq, last_trade_id FROM check_checkpoints WHERE product_id = %s", (PID,)
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _replay_problems(report: Report) -> list[str]:
    return [v for v in report.violations if v.startswith(f"[replay {PID}]")]


def _first_session(flow: Flow) -> tuple[str, str, str]:
    """Two trades, and an ask of each user's left resting (one partly filled)."""
    seller = flow.user(BTC="2")
    buyer = flow.user(USD="100000")
    flow.place(seller, PID, "sell", "30000.00", "0.5")
    flow.place(buyer, PID, "buy", "30100.00", "0.2")
    flow.place(buyer, PID, "buy", "30000.00", "0.1")
    resting = flow.place(seller, PID, "sell", "30200.00", "0.3")
    flow.place(buyer, PID, "buy", "29000.00", "0.1")
    flow.run()
    assert len(flow.trades(PID)) == 2
    return seller, buyer, resting


def _second_session(flow: Flow, seller: str, buyer: str, resting: str) -> None:
    """Fills against an order resting at the checkpoint, cancels another, and trades anew."""
    flow.place(buyer, PID, "buy", "30000.00", "0.1")  # against the first ask, resting
    flow.cancel(resting, PID)
    flow.run()
    flow.place(seller, PID, "sell", "29000.00", "0.05")  # takes the resting bid at 29000
    flow.place(seller, PID, "sell", "31000.00", "0.4")
    flow.place(buyer, PID, "buy", "31000.00", "0.1")
    flow.run()
    assert flow.order(resting)["status"] == "done"


def test_the_second_check_replays_only_what_is_new(flow: Flow) -> None:
    url = flow.cfg.database_url
    seller, buyer, resting = _first_session(flow)
    first = run_check(url)
    assert first.ok, first.text()
    seq1, trade1 = _state(flow)
    assert first.counts[f"{PID} replayed from seq"] == 0
    assert first.counts[f"{PID} events replayed"] == seq1
    assert f"{PID} replayed from seq: 0" in first.text()
    assert _checkpoint(flow) == (seq1, trade1)

    _second_session(flow, seller, buyer, resting)
    seq2, trade2 = _state(flow)
    assert seq2 > seq1 and trade2 > trade1
    second = run_check(url)
    assert second.ok, second.text()
    assert second.counts[f"{PID} replayed from seq"] == seq1
    assert second.counts[f"{PID} events replayed"] == seq2 - seq1
    assert _checkpoint(flow) == (seq2, trade2)

    # Nothing new: nothing replayed, and still every open order compared.
    third = run_check(url)
    assert third.ok, third.text()
    assert (third.counts[f"{PID} replayed from seq"], third.counts[f"{PID} events replayed"]) == (
        seq2,
        0,
    )
    full = run_check(url, full=True)
    assert full.ok, full.text()
    assert (full.counts[f"{PID} replayed from seq"], full.counts[f"{PID} events replayed"]) == (
        0,
        seq2,
    )
    assert _checkpoint(flow) == (seq2, trade2)


@pytest.mark.parametrize("full", [False, True])
def test_a_rewritten_trade_the_checkpoint_covers_is_reported(flow: Flow, full: bool) -> None:
    url = flow.cfg.database_url
    seller, buyer, resting = _first_session(flow)
    assert run_check(url).ok
    covered = _checkpoint(flow)
    _second_session(flow, seller, buyer, resting)
    flow.conn.execute(
        "UPDATE trades SET size = size + 1 WHERE product_id = %s AND trade_id = 1", (PID,)
    )

    report = run_check(url, full=full)
    assert not report.ok
    problems = _replay_problems(report)
    assert any("first difference at #0" in p for p in problems), report.text()
    if not full:
        assert any("the trades it covers changed" in p for p in problems), report.text()
    assert report.counts[f"{PID} replayed from seq"] == 0
    assert _checkpoint(flow) == covered  # not advanced past a violation

    again = run_check(url)  # the checkpoint keeps reporting it on every run
    assert _replay_problems(again), again.text()


def test_a_rewritten_order_the_checkpoint_covers_is_reported_until_a_full_replay(
    flow: Flow,
) -> None:
    """An order's placed-with fields never change. Here the change does not alter what the
    replay produces, so only the digest sees it; `--full` replays from 0, finds every outcome
    reproduced, and takes the data as it now is for its new checkpoint."""
    url = flow.cfg.database_url
    seller, buyer, resting = _first_session(flow)
    assert run_check(url).ok
    flow.conn.execute(
        "UPDATE orders SET stp = 'co' WHERE product_id = %s AND accepted_seq = 1", (PID,)
    )
    _second_session(flow, seller, buyer, resting)

    report = run_check(url)
    assert [p for p in _replay_problems(report) if "the orders it covers changed" in p]
    assert report.violations == _replay_problems(report), report.text()

    assert run_check(url, full=True).ok
    after = run_check(url)
    assert after.ok, after.text()
    assert after.counts[f"{PID} replayed from seq"] == _state(flow)[0]


def test_a_rewritten_trade_after_the_checkpoint_is_reported(flow: Flow) -> None:
    url = flow.cfg.database_url
    seller, buyer, resting = _first_session(flow)
    assert run_check(url).ok
    covered = _checkpoint(flow)
    assert covered is not None
    _second_session(flow, seller, buyer, resting)
    flow.conn.execute(
        "UPDATE trades SET maker_fee = maker_fee + 1, taker_fee = taker_fee - 1 "
        "WHERE product_id = %s AND trade_id = %s",
        (PID, covered[1] + 1),
    )

    report = run_check(url)
    problems = _replay_problems(report)
    assert any(f"first difference at #{covered[1]}" in p for p in problems), report.text()
    assert not any("checkpoint" in p for p in problems)
    assert report.counts[f"{PID} replayed from seq"] == covered[0]
    assert _checkpoint(flow) == covered


def test_with_no_checkpoint_every_product_is_replayed_from_zero(flow: Flow) -> None:
    url = flow.cfg.database_url
    _first_session(flow)
    seq, _ = _state(flow)

    unsaved = run_check(url, save=False)
    assert unsaved.ok, unsaved.text()
    assert unsaved.counts[f"{PID} replayed from seq"] == 0
    assert unsaved.counts[f"{PID} events replayed"] == seq
    assert flow.conn.execute("SELECT count(*) FROM check_checkpoints").fetchone() == (0,)

    # A database not yet migrated to 0005: replays from 0 and stores nothing.
    flow.conn.execute("DROP TABLE check_checkpoints")
    before = run_check(url)
    assert before.ok, before.text()
    assert before.counts[f"{PID} replayed from seq"] == 0
    assert before.counts[f"{PID} events replayed"] == seq
