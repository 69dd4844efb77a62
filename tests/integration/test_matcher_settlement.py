"""Crossing orders settle exactly: balances, holds, fees, ledger, order states, trades.

Each test places orders the way the API does (tests/integration/orderflow.py), runs the matcher
in-process against real Postgres, Redis and LocalStack SQS, then checks every number and
finally `exchange check`'s invariants.
"""

from __future__ import annotations

import uuid
from fractions import Fraction
from math import ceil

import psycopg
import pytest

from chalicelib.core.catalog import PRODUCTS, fee_account
from chalicelib.messaging.order_queue import QueueMessage
from matcher import books, settlement
from matcher.check import run_check
from matcher.settlement import Received, key_lookups_only, settle_batch
from tests.integration.orderflow import Bal, Flow, units

BTC_USD = PRODUCTS["BTC-USD"]


def usd(x: str) -> int:
    return units(x, "USD")


def btc(x: str) -> int:
    return units(x, "BTC")


def fee(notional: int, rate: Fraction) -> int:
    return ceil(notional * rate)


MAKER, TAKER = BTC_USD.maker_fee, BTC_USD.taker_fee


def assert_checked(flow: Flow) -> None:
    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()


def test_limit_orders_cross_at_the_makers_price(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="10000")
    ask = flow.place(seller, "BTC-USD", "sell", "30000.00", "0.5")
    bid = flow.place(buyer, "BTC-USD", "buy", "30100.00", "0.2")
    flow.run()

    (t,) = flow.trades("BTC-USD")
    assert (t["trade_id"], t["maker_order_id"], t["taker_order_id"]) == (1, ask, bid)
    assert (t["price"], t["size"], t["funds"]) == (usd("30000"), btc("0.2"), usd("6000"))
    assert (t["maker_fee"], t["taker_fee"], t["maker_side"]) == (usd("6"), usd("12"), "sell")

    assert flow.bal(buyer, "USD") == Bal(usd("10000") - usd("6012"), 0)
    assert flow.bal(buyer, "BTC") == Bal(btc("0.2"), 0)
    assert flow.bal(seller, "BTC") == Bal(btc("0.5"), btc("0.3"))
    assert flow.bal(seller, "USD") == Bal(usd("5994"), 0)
    assert flow.bal(fee_account("BTC-USD"), "USD") == Bal(usd("18"), 0)
    assert flow.fees("USD") == usd("18")  # the other products' fee accounts got nothing

    a, b = flow.order(ask), flow.order(bid)
    assert (a["status"], a["filled_size"], a["hold_amount"], a["seq"]) == (
        "open",
        btc("0.2"),
        btc("0.3"),
        1,
    )
    assert (a["executed_value"], a["fill_fees"], a["accepted_seq"]) == (usd("6000"), usd("6"), 1)
    assert (b["status"], b["done_reason"], b["hold_amount"], b["filled_size"]) == (
        "done",
        "filled",
        0,
        btc("0.2"),
    )
    assert (b["executed_value"], b["fill_fees"], b["accepted_seq"]) == (usd("6000"), usd("12"), 2)
    assert b["done_at"] is not None
    assert_checked(flow)


def test_limit_buy_sweeping_levels_keeps_the_hold_of_its_open_size(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "0.1")
    flow.place(seller, "BTC-USD", "sell", "30005.00", "0.1")
    bid = flow.place(buyer, "BTC-USD", "buy", "30010.00", "0.5")
    flow.run()

    n1, n2 = usd("3000"), usd("3000.5")
    spent = n1 + n2 + fee(n1, TAKER) + fee(n2, TAKER)
    b = flow.order(bid)
    open_hold = BTC_USD.limit_buy_hold(3001000, 300000)
    assert (b["status"], b["filled_size"], b["hold_amount"]) == ("open", btc("0.2"), open_hold)
    assert flow.bal(buyer, "USD") == Bal(usd("100000") - spent - open_hold, open_hold)
    assert flow.bal(buyer, "BTC") == Bal(btc("0.2"), 0)
    assert flow.fees("USD") == fee(n1, MAKER) + fee(n2, MAKER) + fee(n1, TAKER) + fee(n2, TAKER)
    assert_checked(flow)


def test_market_buy_by_size_spends_from_its_budget_and_releases_the_rest(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "0.5")
    flow.place(seller, "BTC-USD", "sell", "30010.00", "0.5")
    buy = flow.place(buyer, "BTC-USD", "buy", size="0.6")
    assert flow.bal(buyer, "USD") == Bal(0, usd("100000"))  # the whole balance is its budget
    flow.run()

    n1, n2 = usd("15000"), usd("3001")
    b = flow.order(buy)
    assert (b["status"], b["done_reason"], b["filled_size"], b["hold_amount"]) == (
        "done",
        "filled",
        btc("0.6"),
        0,
    )
    assert flow.bal(buyer, "USD") == Bal(
        usd("100000") - n1 - n2 - fee(n1, TAKER) - fee(n2, TAKER), 0
    )
    assert flow.bal(buyer, "BTC") == Bal(btc("0.6"), 0)
    assert [t["size"] for t in flow.trades("BTC-USD")] == [btc("0.5"), btc("0.1")]
    assert_checked(flow)


def test_market_buy_by_funds_never_spends_past_them(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="5000")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "1")
    buy = flow.place(buyer, "BTC-USD", "buy", funds="1000.00")
    flow.run()

    b = flow.order(buy)
    assert b["status"] == "done" and b["hold_amount"] == 0
    assert 0 < b["executed_value"] + b["fill_fees"] <= usd("1000")
    assert b["fill_fees"] == fee(b["executed_value"], TAKER)
    assert flow.bal(buyer, "USD") == Bal(usd("5000") - b["executed_value"] - b["fill_fees"], 0)
    assert flow.bal(buyer, "BTC") == Bal(b["filled_size"], 0)
    assert_checked(flow)


def test_market_sell_without_enough_bids_releases_what_it_did_not_sell(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(buyer, "BTC-USD", "buy", "29000.00", "0.3")
    sell = flow.place(seller, "BTC-USD", "sell", size="0.5")
    flow.run()

    s = flow.order(sell)
    assert (s["status"], s["done_reason"], s["filled_size"], s["hold_amount"]) == (
        "done",
        "canceled",
        btc("0.3"),
        0,
    )
    n = usd("8700")
    assert flow.bal(seller, "BTC") == Bal(btc("0.7"), 0)
    assert flow.bal(seller, "USD") == Bal(n - fee(n, TAKER), 0)
    assert_checked(flow)


def test_ioc_fills_what_it_can_and_cancels_the_rest(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "0.1")
    bid = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.4", tif="IOC")
    flow.run()

    b = flow.order(bid)
    assert (b["status"], b["done_reason"], b["filled_size"], b["hold_amount"]) == (
        "done",
        "canceled",
        btc("0.1"),
        0,
    )
    n = usd("3000")
    assert flow.bal(buyer, "USD") == Bal(usd("100000") - n - fee(n, TAKER), 0)
    assert_checked(flow)


def test_fok_fills_entirely_or_not_at_all(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "0.1")
    too_big = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.2", tif="FOK")
    fits = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.1", tif="FOK")
    flow.run()

    big, ok = flow.order(too_big), flow.order(fits)
    assert (big["filled_size"], big["hold_amount"]) == (0, 0)
    assert (big["status"], big["done_reason"]) in (("done", "canceled"), ("rejected", "rejected"))
    assert (ok["status"], ok["done_reason"], ok["filled_size"]) == ("done", "filled", btc("0.1"))
    n = usd("3000")
    assert flow.bal(buyer, "USD") == Bal(usd("100000") - n - fee(n, TAKER), 0)
    assert_checked(flow)


def test_post_only_that_would_take_is_rejected_and_released(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "0.1")
    taking = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.1", post_only=True)
    making = flow.place(buyer, "BTC-USD", "buy", "29999.99", "0.1", post_only=True)
    flow.run()

    t, m = flow.order(taking), flow.order(making)
    assert (t["status"], t["done_reason"], t["hold_amount"]) == ("rejected", "rejected", 0)
    assert t["reject_reason"]
    assert m["status"] == "open"
    assert flow.bal(buyer, "USD").hold == m["hold_amount"]
    assert flow.trades("BTC-USD") == []
    assert_checked(flow)


@pytest.mark.parametrize(
    ("stp", "taker_size", "expected"),
    [
        # dc: the smaller side is cancelled, the larger decremented by it (no trade)
        ("dc", "0.2", {"maker": ("open", None, "0.3"), "taker": ("done", "self_trade", None)}),
        ("dc", "0.8", {"maker": ("done", "self_trade", None), "taker": ("open", None, "0.3")}),
        ("co", "0.2", {"maker": ("done", "self_trade", None), "taker": ("open", None, "0.2")}),
        ("cn", "0.2", {"maker": ("open", None, "0.5"), "taker": ("done", "self_trade", None)}),
        (
            "cb",
            "0.2",
            {"maker": ("done", "self_trade", None), "taker": ("done", "self_trade", None)},
        ),
    ],
)
def test_self_trade_prevention(flow: Flow, stp: str, taker_size: str, expected: dict) -> None:
    me = flow.user(BTC="1", USD="100000")
    maker = flow.place(me, "BTC-USD", "sell", "30000.00", "0.5")
    taker = flow.place(me, "BTC-USD", "buy", "30000.00", taker_size, stp=stp)
    flow.run()

    assert flow.trades("BTC-USD") == []
    for name, oid in (("maker", maker), ("taker", taker)):
        o = flow.order(oid)
        status, reason, open_size = expected[name]
        assert (o["status"], o["done_reason"]) == (status, reason), name
        assert o["filled_size"] == 0
        if open_size is not None:
            assert o["size"] - o["stp_size"] == btc(open_size), name
    assert_checked(flow)  # holds of what is still open, nothing held by what is done


def test_cancel_of_an_open_order_releases_its_hold(flow: Flow) -> None:
    buyer = flow.user(USD="100000")
    bid = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.5")
    flow.cancel(bid, "BTC-USD")
    flow.run()

    b = flow.order(bid)
    assert (b["status"], b["done_reason"], b["hold_amount"]) == ("done", "canceled", 0)
    assert (b["accepted_seq"], b["cancel_seq"]) == (1, 2)
    assert flow.bal(buyer, "USD") == Bal(usd("100000"), 0)
    assert_checked(flow)


def test_cancel_that_overtakes_its_order_cancels_it_while_pending(flow: Flow) -> None:
    buyer = flow.user(USD="100000")
    bid = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.5", send=False)  # publish "failed"
    flow.cancel(bid, "BTC-USD")
    flow.run()
    b = flow.order(bid)
    assert (b["status"], b["done_reason"], b["hold_amount"], b["accepted_seq"]) == (
        "done",
        "canceled",
        0,
        None,
    )
    assert flow.bal(buyer, "USD") == Bal(usd("100000"), 0)

    # Its order message arriving late (e.g. from the sweeper) is skipped.
    flow.send(QueueMessage("order", bid, "BTC-USD", buyer))
    flow.run()
    assert flow.order(bid)["accepted_seq"] is None
    assert_checked(flow)


def test_wei_amounts_beyond_bigint_settle_exactly(flow: Flow) -> None:
    seller = flow.user(ETH="1000")
    buyer = flow.user(USD="1000000")
    flow.place(seller, "ETH-USD", "sell", "2000.00", "150")
    bid = flow.place(buyer, "ETH-USD", "buy", "2000.00", "100")
    flow.run()

    n = usd("200000")
    assert flow.bal(buyer, "ETH") == Bal(units("100", "ETH"), 0)  # 1e20 wei > 2**63
    assert flow.bal(seller, "ETH") == Bal(units("850", "ETH"), units("50", "ETH"))
    assert flow.bal(buyer, "USD") == Bal(usd("1000000") - n - fee(n, TAKER), 0)
    assert flow.order(bid)["filled_size"] == units("100", "ETH")
    assert_checked(flow)


def test_market_data_is_published_to_redis(flow: Flow) -> None:
    from chalicelib.core.market_keys import keys_for
    from chalicelib.platform.cache import redis_client

    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "0.5")
    flow.place(buyer, "BTC-USD", "buy", "29000.00", "0.5")
    flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.1")
    flow.run()

    r = redis_client(flow.cfg.redis_url)
    keys = keys_for(flow.cfg)
    ticker = {k.decode(): v.decode() for k, v in r.hgetall(keys.ticker("BTC-USD")).items()}
    assert (ticker["bid"], ticker["ask"], ticker["sequence"]) == (
        "29000.00000000",
        "30000.00000000",
        "4",
    )
    assert ticker["ask_size"] == "0.40000000"
    entries = r.xrevrange(keys.trades("BTC-USD"), count=50)
    taker = flow.trades("BTC-USD")[0]["taker_order_id"]
    assert len(entries) == 1 and entries[0][0] == b"1-0"
    mine = entries[0][1]
    assert mine[b"taker_order_id"].decode() == taker
    assert mine[b"price"] == b"30000.00000000" and mine[b"side"] == b"sell"


def test_a_batch_reads_its_own_orders_not_the_book(flow: Flow) -> None:
    """The settler finds a batch's orders by key even when the planner believes `orders` is
    nearly empty (statistics taken before the book grew, as in a new database): settling a
    batch against a book of 600 resting orders reads a few dozen order rows, not the book."""
    flow.conn.execute("ALTER TABLE orders SET (autovacuum_enabled = false)")  # keep them stale
    flow.conn.execute("ANALYZE orders")
    seller, buyer = flow.user(BTC="10"), flow.user(USD="1000000")

    def batch(user: str, side: str, prices: list[str]) -> list[Received]:
        ids = [flow.place(user, "BTC-USD", side, p, "0.001", send=False) for p in prices]
        return [Received(str(uuid.uuid4()), QueueMessage("order", i, "BTC-USD", user)) for i in ids]

    with psycopg.connect(flow.cfg.database_url, autocommit=True) as conn:

        def order_rows_read() -> int:
            for c in (conn, flow.conn):
                c.execute("SELECT pg_stat_force_next_flush()")  # flushed when the backend idles
            row = flow.conn.execute(
                """SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables
                   WHERE relname = 'orders'"""
            ).fetchone()
            assert row is not None
            return int(row[0])

        key_lookups_only(conn)
        loaded = books.load(conn, "BTC-USD")
        for n in range(60):
            prices = [f"{31000 + 10 * n + i}.00" for i in range(10)]
            settle_batch(conn, loaded, batch(seller, "sell", prices))
        crossing = [batch(buyer, "buy", ["31005.00"] * 5 + ["30000.00"] * 5) for _ in range(5)]
        before = order_rows_read()
        trades = sum(len(settle_batch(conn, loaded, b).trades) for b in crossing)
        read = order_rows_read() - before
    assert len(loaded.live) >= 600 and trades > 0
    assert read <= 5 * 40, f"{read} order rows read for 5 batches of 10"
    assert_checked(flow)


def _crossing_pair(flow: Flow) -> tuple[str, str, str, str, list[Received]]:
    """A seller and a buyer whose orders cross, placed and not sent, and their batch:
    (seller, buyer, ask, bid, batch)."""
    seller, buyer = flow.user(BTC="1"), flow.user(USD="10000")
    ask = flow.place(seller, "BTC-USD", "sell", "30000.00", "0.5", send=False)
    bid = flow.place(buyer, "BTC-USD", "buy", "30100.00", "0.2", send=False)
    batch = [
        Received(str(uuid.uuid4()), QueueMessage("order", o, "BTC-USD", u))
        for o, u in ((ask, seller), (bid, buyer))
    ]
    return seller, buyer, ask, bid, batch


@pytest.mark.parametrize("fails", ["building the balance moves", "the hook before the commit"])
def test_a_batch_abandoned_before_its_commit_writes_nothing(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """An exception while the batch's statement is built (a bug in its balance moves) or from
    the hook before its commit leaves nothing of the batch: not its orders and trades without
    their balance moves."""
    seller, buyer, ask, bid, batch = _crossing_pair(flow)
    before = [flow.bal(u, a) for u in (seller, buyer) for a in ("BTC", "USD")]

    def boom(*_: object) -> None:
        raise RuntimeError("boom")

    hook = None
    if fails == "building the balance moves":
        monkeypatch.setattr(settlement, "moves_sql", boom)
    else:
        hook = boom
    with psycopg.connect(flow.cfg.database_url, autocommit=True) as conn:
        with pytest.raises(RuntimeError, match="boom"):
            settle_batch(conn, books.load(conn, "BTC-USD"), batch, hook)
        assert [flow.order(o)["status"] for o in (ask, bid)] == ["pending", "pending"]
        assert flow.trades("BTC-USD") == []
        assert [flow.bal(u, a) for u in (seller, buyer) for a in ("BTC", "USD")] == before
        assert books.load(conn, "BTC-USD").book.seq == 0
        assert_checked(flow)

        monkeypatch.undo()  # and the batch settles whole once nothing fails
        result = settle_batch(conn, books.load(conn, "BTC-USD"), batch)
    assert len(result.trades) == 1 and flow.order(bid)["status"] == "done"
    assert_checked(flow)


@pytest.mark.parametrize("tamper", ["an order done meanwhile", "a hold gone meanwhile"])
def test_a_batch_whose_check_fails_on_the_server_writes_nothing(flow: Flow, tamper: str) -> None:
    """The batch is one statement whose select list holds its checks: an order no longer live
    (EX003 -> Conflict) or a balance that cannot take its moves (EX001 -> InsufficientFunds)
    fails it on the server, after the fence and the other writes have run, and none of them
    stays: not the fence, the order rows, the trades nor the ledger."""
    _, buyer, ask, bid, batch = _crossing_pair(flow)
    with psycopg.connect(flow.cfg.database_url, autocommit=True) as conn:
        loaded = books.load(conn, "BTC-USD")
        rows = settlement.load_orders(conn, loaded.rules, [ask, bid])
        ledger = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()
        if tamper == "an order done meanwhile":
            conn.execute(
                """UPDATE orders SET status = 'done', done_reason = 'canceled', hold_amount = 0,
                     done_at = now() WHERE id = %s""",
                (bid,),
            )
            expected: type[Exception] = settlement.Conflict
        else:  # the buyer's hold taken away behind the matcher's back
            conn.execute(
                "UPDATE balances SET hold = 0 WHERE user_id = %s AND asset = 'USD'", (buyer,)
            )
            expected = settlement.InsufficientFunds
        with pytest.raises(expected):
            settle_batch(conn, loaded, batch, rows=rows)
        assert conn.execute("SELECT count(*) FROM ledger_entries").fetchone() == ledger
        seq = conn.execute(
            "SELECT last_seq FROM product_state WHERE product_id = 'BTC-USD'"
        ).fetchone()
    assert seq == (0,)
    assert flow.trades("BTC-USD") == []
    assert flow.order(ask)["status"] == "pending"
