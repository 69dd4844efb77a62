"""One test (or a few) per rule of the matching engine, with hand-worked expectations."""

from __future__ import annotations

import ast
import doctest
import json
import math
from fractions import Fraction
from pathlib import Path

import pytest

import matcher.engine as engine_module
from matcher.engine import (
    BUY,
    FOK,
    IOC,
    SELL,
    CancelRejected,
    Changed,
    Done,
    DuplicateOrderId,
    Fill,
    Opened,
    Order,
    OrderBook,
)


def make(**rules: object) -> OrderBook:
    rules.setdefault("quote_units_per_tick_lot", 1)
    return OrderBook(**rules)  # type: ignore[arg-type]


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def sell(book: OrderBook, oid: str, price: int, size: int, account: str = "s") -> None:
    [opened] = book.submit(Order.limit(oid, account, SELL, price, size))
    assert isinstance(opened, Opened)


def buy(book: OrderBook, oid: str, price: int, size: int, account: str = "b") -> None:
    [opened] = book.submit(Order.limit(oid, account, BUY, price, size))
    assert isinstance(opened, Opened)


# ---------------------------------------------------------------- resting, priority, prices


def test_a_limit_order_that_does_not_cross_rests_and_shows_in_every_query() -> None:
    book = make()
    events = book.submit(Order.limit("b1", "alice", BUY, 99, 5))
    assert events == [Opened(1, "b1", "alice", BUY, 99, 5)]
    book.submit(Order.limit("a1", "bob", SELL, 101, 7))
    assert (book.best_bid(), book.best_ask()) == (99, 101)
    assert book.depth(BUY) == [(99, 5, 1)]
    assert book.orders(SELL) == [(101, 7, "a1")]
    assert book.order("b1") == {
        "id": "b1",
        "account": "alice",
        "side": BUY,
        "price": 99,
        "size": 5,
        "stp": "dc",
        "priority": 1,
    }
    assert len(book) == 2 and "a1" in book and "zz" not in book
    book._check()


def test_price_then_time_priority_and_fills_at_the_makers_price() -> None:
    book = make()
    sell(book, "late-good", 100, 1)  # better price, placed first
    sell(book, "first", 101, 2)
    sell(book, "second", 101, 2)
    sell(book, "better", 99, 1)  # best price, placed last
    events = book.submit(Order.limit("t", "b", BUY, 105, 5))
    fills = [e for e in events if isinstance(e, Fill)]
    assert [(f.maker_id, f.price, f.size) for f in fills] == [
        ("better", 99, 1),
        ("late-good", 100, 1),
        ("first", 101, 2),
        ("second", 101, 1),
    ]
    assert all(f.taker_id == "t" and f.taker_side == BUY for f in fills)
    assert events[-1] == Done(book.seq, "t", "b", BUY, 105, "filled", "", 0, None)
    assert book.orders(SELL) == [(101, 1, "second")]
    book._check()


def test_a_partly_filled_gtc_order_rests_its_remainder_with_the_next_sequence_as_priority() -> None:
    book = make()
    sell(book, "a", 100, 3)
    events = book.submit(Order.limit("t", "b", BUY, 100, 5))
    assert kinds(events) == ["Fill", "Done", "Opened"]
    assert events[1] == Done(3, "a", "s", SELL, 100, "filled", "", 0, None)
    assert events[2] == Opened(4, "t", "b", BUY, 100, 2)
    assert book.order("t")["priority"] == 4  # type: ignore[index]
    assert book.best_ask() is None and book.depth(BUY) == [(100, 2, 1)]


def test_bids_are_served_best_first_to_a_sell() -> None:
    book = make()
    buy(book, "low", 98, 1)
    buy(book, "high", 99, 1)
    events = book.submit(Order.limit("t", "s", SELL, 90, 2))
    assert [(f.maker_id, f.price) for f in events if isinstance(f, Fill)] == [
        ("high", 99),
        ("low", 98),
    ]


# ---------------------------------------------------------------- time in force


def test_ioc_fills_what_it_can_and_cancels_the_rest() -> None:
    book = make()
    sell(book, "a", 100, 2)
    events = book.submit(Order.limit("t", "b", BUY, 100, 5, time_in_force=IOC))
    assert kinds(events) == ["Fill", "Done", "Done"]
    assert events[-1].reason == "canceled" and events[-1].message == "ioc"
    assert events[-1].remaining == 3
    assert len(book) == 0


def test_ioc_that_crosses_nothing_is_canceled_and_leaves_the_book_alone() -> None:
    book = make()
    sell(book, "a", 101, 2)
    [done] = book.submit(Order.limit("t", "b", BUY, 100, 5, time_in_force=IOC))
    assert (done.reason, done.message, done.remaining) == ("canceled", "ioc", 5)
    assert book.orders(BUY) == [] and book.orders(SELL) == [(101, 2, "a")]


def test_fok_that_needs_the_last_lot_of_a_level_fills_completely() -> None:
    book = make()
    sell(book, "a", 100, 2)
    sell(book, "b", 101, 3)
    sell(book, "c", 102, 9)
    events = book.submit(Order.limit("t", "x", BUY, 101, 5, time_in_force=FOK))
    fills = [(e.maker_id, e.size) for e in events if isinstance(e, Fill)]
    assert fills == [("a", 2), ("b", 3)]
    assert events[-1].reason == "filled"
    assert book.orders(SELL) == [(102, 9, "c")]


def test_fok_one_lot_short_is_rejected_with_no_state_left_behind() -> None:
    book = make()
    sell(book, "a", 100, 2)
    sell(book, "b", 101, 3)
    sell(book, "c", 102, 9)
    before = book.snapshot()
    [done] = book.submit(Order.limit("t", "x", BUY, 101, 6, time_in_force=FOK))
    assert (done.reason, done.message, done.remaining) == ("rejected", "fok not filled", 6)
    after = book.snapshot()
    assert after["orders"] == before["orders"]
    assert after["seq"] == before["seq"] + 1


def test_fok_against_own_orders_fills_only_under_cancel_oldest() -> None:
    def scenario(stp: str) -> list:
        book = make()
        sell(book, "own", 100, 2, account="x")
        sell(book, "other", 100, 5)
        return book.submit(Order.limit("t", "x", BUY, 100, 5, time_in_force=FOK, stp=stp))

    co = scenario("co")
    assert kinds(co) == ["Done", "Fill", "Done", "Done"]
    assert (co[0].order_id, co[0].reason) == ("own", "self_trade")
    assert co[-1].reason == "filled"
    for stp in ("dc", "cn", "cb"):
        [done] = scenario(stp)
        assert (done.reason, done.message) == ("rejected", "fok not filled"), stp


def test_fok_that_crosses_nothing_is_rejected() -> None:
    book = make()
    [done] = book.submit(Order.limit("t", "x", SELL, 100, 1, time_in_force=FOK))
    assert (done.reason, done.message) == ("rejected", "fok not filled")


# ---------------------------------------------------------------- post only


def test_post_only_that_would_cross_is_rejected_whole() -> None:
    book = make()
    sell(book, "a", 100, 1)
    [done] = book.submit(Order.limit("p", "b", BUY, 100, 5, post_only=True))
    assert (done.reason, done.message, done.remaining) == ("rejected", "post only", 5)
    assert book.orders(SELL) == [(100, 1, "a")] and book.orders(BUY) == []


def test_post_only_that_does_not_cross_rests() -> None:
    book = make()
    sell(book, "a", 100, 1)
    assert kinds(book.submit(Order.limit("p", "b", BUY, 99, 5, post_only=True))) == ["Opened"]


def test_post_only_needs_gtc() -> None:
    book = make()
    [done] = book.submit(Order.limit("p", "b", BUY, 99, 5, time_in_force=IOC, post_only=True))
    assert done.message == "post only requires GTC"


# ---------------------------------------------------------------- market orders


def test_market_by_size_walks_the_book() -> None:
    book = make()
    sell(book, "a", 100, 2)
    sell(book, "b", 105, 2)
    events = book.submit(Order.market("m", "x", BUY, size=3))
    assert [(e.price, e.size) for e in events if isinstance(e, Fill)] == [(100, 2), (105, 1)]
    assert events[-1] == Done(book.seq, "m", "x", BUY, None, "filled", "", 0, None)


def test_market_without_enough_liquidity_is_canceled_with_its_remainder() -> None:
    book = make()
    buy(book, "a", 100, 2)
    events = book.submit(Order.market("m", "x", SELL, size=5))
    assert events[-1][5:] == ("canceled", "no liquidity", 3, None)
    [done] = book.submit(Order.market("m2", "x", SELL, size=5))
    assert (done.reason, done.remaining) == ("canceled", 5)


def test_market_buy_by_funds_covers_notional_plus_taker_fee() -> None:
    # 3 lots at 1000: notional 3000, taker fee ceil(6) = 6, so 3006 buys exactly 3.
    book = make()
    sell(book, "a", 1000, 10)
    events = book.submit(Order.market("m", "x", BUY, funds=3006))
    [fill] = [e for e in events if isinstance(e, Fill)]
    assert (fill.size, fill.notional, fill.taker_fee) == (3, 3000, 6)
    assert events[-1][5:] == ("filled", "", None, 0)


def test_market_buy_by_funds_one_unit_short_buys_one_lot_less() -> None:
    book = make()
    sell(book, "a", 1000, 10)
    events = book.submit(Order.market("m", "x", BUY, funds=3005))
    [fill] = [e for e in events if isinstance(e, Fill)]
    assert (fill.size, fill.notional, fill.taker_fee) == (2, 2000, 4)
    assert events[-1][5:] == ("filled", "", None, 3005 - 2004)
    assert book.orders(SELL) == [(1000, 8, "a")]


def test_market_buy_by_funds_across_levels_never_spends_past_the_budget() -> None:
    book = make()
    sell(book, "a", 1000, 1)
    sell(book, "b", 1500, 5)
    events = book.submit(Order.market("m", "x", BUY, funds=4100))
    fills = [e for e in events if isinstance(e, Fill)]
    # 1000 + 2 at the first level, then 3098 left buys 2 lots at 1500 (3000 + 6).
    assert [(f.price, f.size) for f in fills] == [(1500 - 500, 1), (1500, 2)]
    spent = sum(f.notional + f.taker_fee for f in fills)
    assert spent == 4008 and events[-1].remaining_funds == 4100 - spent


def test_funds_smaller_than_one_lot_at_the_best_price_is_rejected() -> None:
    book = make()
    sell(book, "a", 1000, 10)
    [done] = book.submit(Order.market("m", "x", BUY, funds=1001))  # one lot needs 1002
    assert (done.reason, done.message, done.remaining_funds) == (
        "rejected",
        "funds too small",
        1001,
    )
    assert book.orders(SELL) == [(1000, 10, "a")]


def test_funds_below_the_minimum_are_rejected() -> None:
    book = make(min_funds=500)
    [done] = book.submit(Order.market("m", "x", BUY, funds=499))
    assert (done.reason, done.message) == ("rejected", "funds too small")


def test_market_with_size_and_funds_stops_at_whichever_binds_first() -> None:
    book = make()
    sell(book, "a", 10, 100)
    events = book.submit(Order.market("m", "x", BUY, size=4, funds=10_000))
    assert events[0].size == 4 and events[-1][5:] == ("filled", "", 0, 10_000 - 40 - 1)
    events = book.submit(Order.market("n", "x", BUY, size=50, funds=101))
    assert events[0].size == 10 and events[-1][5:] == ("filled", "", 40, 101 - 100 - 1)


def test_market_sell_with_funds_and_market_without_caps_are_rejected() -> None:
    book = make()
    [done] = book.submit(Order.market("m", "x", SELL, funds=100))
    assert done.message == "funds only for market buys"
    [done] = book.submit(Order.market("n", "x", BUY))
    assert done.message == "size or funds required"


# ---------------------------------------------------------------- self-trade prevention


def stp_book() -> OrderBook:
    book = make()
    sell(book, "own1", 100, 3, account="me")
    sell(book, "own2", 100, 2, account="me")
    sell(book, "other", 100, 4, account="you")
    return book


def test_stp_cancel_oldest_cancels_each_own_resting_order_and_trades_on() -> None:
    book = stp_book()
    events = book.submit(Order.limit("t", "me", BUY, 100, 4, stp="co"))
    assert [(type(e).__name__, e[1], e[5]) for e in events[:2]] == [
        ("Done", "own1", "self_trade"),
        ("Done", "own2", "self_trade"),
    ]
    assert (events[0].remaining, events[1].remaining) == (3, 2)
    assert kinds(events[2:]) == ["Fill", "Done", "Done"]
    assert (events[2].maker_id, events[2].size) == ("other", 4)
    assert events[-1].reason == "filled" and len(book) == 0


def test_stp_cancel_newest_cancels_the_taker_and_leaves_the_book() -> None:
    book = stp_book()
    before = book.orders(SELL)
    [done] = book.submit(Order.limit("t", "me", BUY, 100, 4, stp="cn"))
    assert (done.order_id, done.reason, done.message, done.remaining) == (
        "t",
        "self_trade",
        "cn",
        4,
    )
    assert book.orders(SELL) == before


def test_stp_cancel_both_cancels_the_first_own_order_and_the_taker() -> None:
    book = stp_book()
    events = book.submit(Order.limit("t", "me", BUY, 100, 4, stp="cb"))
    assert [(e.order_id, e.reason, e.remaining) for e in events] == [
        ("own1", "self_trade", 3),
        ("t", "self_trade", 4),
    ]
    assert book.orders(SELL) == [(100, 2, "own2"), (100, 4, "other")]


def test_stp_decrement_and_cancel_against_several_own_orders() -> None:
    book = stp_book()
    events = book.submit(Order.limit("t", "me", BUY, 100, 4))  # dc is the default
    assert events == [
        # Taker (4) larger than own1 (3): own1 cancelled, taker decremented to 1.
        Changed(4, "t", "me", BUY, 100, 4, 1, "self_trade"),
        Done(5, "own1", "me", SELL, 100, "self_trade", "dc", 3, None),
        # Taker (1) smaller than own2 (2): own2 decremented to 1, taker cancelled.
        Changed(6, "own2", "me", SELL, 100, 2, 1, "self_trade"),
        Done(7, "t", "me", BUY, 100, "self_trade", "dc", 1, None),
    ]
    assert book.orders(SELL) == [(100, 1, "own2"), (100, 4, "other")]
    assert book.depth(SELL) == [(100, 5, 2)]
    book._check()


def test_stp_decrement_and_cancel_with_equal_sizes_cancels_both() -> None:
    book = stp_book()
    events = book.submit(Order.limit("t", "me", BUY, 100, 3, stp="dc"))
    assert [(e.order_id, e.reason, e.remaining) for e in events] == [
        ("own1", "self_trade", 3),
        ("t", "self_trade", 3),
    ]


def test_stp_dc_for_a_funds_only_market_buy_cancels_the_taker_like_cn() -> None:
    book = stp_book()
    [done] = book.submit(Order.market("m", "me", BUY, funds=10_000))
    assert (done.reason, done.message, done.remaining, done.remaining_funds) == (
        "self_trade",
        "cn",
        None,
        10_000,
    )
    assert len(book) == 3


def test_stp_dc_for_a_market_order_with_size_decrements() -> None:
    book = stp_book()
    events = book.submit(Order.market("m", "me", BUY, size=10, funds=100_000))
    assert kinds(events) == ["Changed", "Done", "Changed", "Done", "Fill", "Done", "Done"]
    # 10 - 3 - 2 decremented, 4 filled, 1 left with no liquidity.
    assert events[-1][5:] == ("canceled", "no liquidity", 1, 100_000 - 400 - 1)


def test_the_taker_mode_applies_not_the_makers() -> None:
    book = make()
    sell(book, "own", 100, 3, account="me")  # its stp is dc
    [done] = book.submit(Order.limit("t", "me", BUY, 100, 1, stp="cn"))
    assert (done.order_id, done.message) == ("t", "cn")


def test_no_trade_between_an_account_and_itself_in_any_mode() -> None:
    for stp in ("dc", "co", "cn", "cb"):
        book = stp_book()
        events = book.submit(Order.market("m", "me", BUY, size=9, stp=stp))
        assert all(e.maker_account != e.taker_account for e in events if isinstance(e, Fill))
        book._check()


# ---------------------------------------------------------------- cancel


def test_cancel_a_resting_order() -> None:
    book = make()
    sell(book, "a", 100, 3)
    assert book.cancel("a") == [Done(2, "a", "s", SELL, 100, "canceled", "", 3, None)]
    assert len(book) == 0 and book.best_ask() is None
    book._check()


def test_cancel_of_unknown_or_finished_ids_is_a_result_not_an_exception() -> None:
    book = make()
    sell(book, "a", 100, 3)
    book.submit(Order.limit("t", "b", BUY, 100, 3))  # fills "a" completely
    seq = book.seq
    assert book.cancel("a") == [CancelRejected("a", "not found")]
    assert book.cancel("nope") == [CancelRejected("nope", "not found")]
    assert book.seq == seq  # nothing changed, so no sequence number was used


def test_cancel_a_partly_filled_resting_order_returns_its_remainder() -> None:
    book = make()
    sell(book, "a", 100, 5)
    sell(book, "b", 100, 5)
    book.submit(Order.limit("t", "x", BUY, 100, 2))
    [done] = book.cancel("a")
    assert (done.reason, done.remaining) == ("canceled", 3)
    assert book.orders(SELL) == [(100, 5, "b")]
    assert book.cancel("a") == [CancelRejected("a", "not found")]
    events = book.submit(Order.market("m", "x", BUY, size=1))
    assert events[0].maker_id == "b"


def test_cancel_in_the_middle_of_a_level_keeps_fifo() -> None:
    book = make()
    for i in range(5):
        sell(book, f"a{i}", 100, 1)
    book.cancel("a1")
    book.cancel("a3")
    assert [o[2] for o in book.orders(SELL)] == ["a0", "a2", "a4"]
    assert book.depth(SELL) == [(100, 3, 3)]
    events = book.submit(Order.market("m", "x", BUY, size=3))
    assert [e.maker_id for e in events if isinstance(e, Fill)] == ["a0", "a2", "a4"]
    book._check()


def test_a_level_that_keeps_churning_does_not_keep_cancelled_entries() -> None:
    book = make()
    sell(book, "anchor", 100, 1)  # never leaves, so the level never empties
    for i in range(10_000):
        sell(book, f"x{i}", 100, 1)
        book.cancel(f"x{i}")
    level = book._asks.levels[100]
    assert len(level.orders) <= 2 * level.count + 16
    book._check()


def test_an_id_can_be_used_again_once_its_order_is_done_but_not_while_resting() -> None:
    book = make()
    sell(book, "a", 100, 1)
    with pytest.raises(DuplicateOrderId):
        book.submit(Order.limit("a", "s", SELL, 101, 1))
    book.cancel("a")
    sell(book, "a", 101, 1)


# ---------------------------------------------------------------- fees


@pytest.mark.parametrize(
    ("q", "price", "size", "notional", "maker_fee", "taker_fee"),
    [
        (1, 1000, 1, 1000, 1, 2),  # exact: no rounding
        (1, 1001, 1, 1001, 2, 3),  # 1.001 -> 2, 2.002 -> 3
        (1, 333, 1, 333, 1, 1),  # 0.333 -> 1, 0.666 -> 1
        (1, 500, 1, 500, 1, 1),  # 0.5 -> 1, 1 exactly
        (100, 3, 7, 2100, 3, 5),  # ETH-USD style: 2.1 -> 3, 4.2 -> 5
        (1, 2500, 4, 10_000, 10, 20),
    ],
)
def test_fees_are_per_fill_and_rounded_up_to_the_unit(
    q: int, price: int, size: int, notional: int, maker_fee: int, taker_fee: int
) -> None:
    book = make(quote_units_per_tick_lot=q)
    sell(book, "a", price, size)
    fill = book.submit(Order.market("m", "x", BUY, size=size))[0]
    assert (fill.notional, fill.maker_fee, fill.taker_fee) == (notional, maker_fee, taker_fee)


def test_fee_rates_are_constructor_fractions() -> None:
    book = make(maker_fee=Fraction(0), taker_fee=Fraction(1, 3))
    sell(book, "a", 10, 1)
    fill = book.submit(Order.market("m", "x", BUY, size=1))[0]
    assert (fill.maker_fee, fill.taker_fee) == (0, 4)  # 10/3 -> 4
    assert book.taker_fee == Fraction(1, 3)


def test_buy_hold_covers_a_limit_buy_filled_in_pieces() -> None:
    book = make()
    # A limit buy of 2 lots at 1001 can fill in two pieces, paying ceil(2.002) = 3 twice.
    assert book.buy_hold(1001, 2) == 2002 + 6
    sell(book, "a", 1001, 1)
    sell(book, "b", 1001, 1)
    fills = [e for e in book.submit(Order.limit("t", "x", BUY, 1001, 2)) if isinstance(e, Fill)]
    one_fill_fee = math.ceil(2002 * book.taker_fee)  # the fee had it filled in one piece
    assert sum(f.notional + f.taker_fee for f in fills) == 2008 > 2002 + one_fill_fee


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        OrderBook(0)
    with pytest.raises(ValueError):
        OrderBook(1, min_size_lots=0)
    with pytest.raises(ValueError):
        OrderBook(1, taker_fee=Fraction(-1, 100))


# ---------------------------------------------------------------- minimum size and validation


def test_orders_below_the_minimum_size_are_rejected() -> None:
    book = make(min_size_lots=10)
    [done] = book.submit(Order.limit("a", "x", BUY, 100, 9))
    assert (done.reason, done.message, done.remaining) == ("rejected", "size too small", 9)
    [done] = book.submit(Order.market("m", "x", SELL, size=9))
    assert (done.reason, done.message) == ("rejected", "size too small")
    assert kinds(book.submit(Order.limit("b", "x", BUY, 100, 10))) == ["Opened"]


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (Order.limit("o", "x", "hold", 100, 1), "invalid side"),
        (Order.limit("o", "x", BUY, 0, 1), "invalid price"),
        (Order.limit("o", "x", BUY, 100, 0), "size too small"),
        (Order.limit("o", "x", BUY, 100, 1, time_in_force="GTD"), "invalid time in force"),
        (Order.limit("o", "x", BUY, 100, 1, stp="zz"), "invalid stp"),
        (Order("o", "x", BUY, "stop", 100, 1), "invalid order type"),
        (Order("o", "x", BUY, "limit", 100, 1, funds=5), "funds only for market orders"),
        (Order("o", "x", BUY, "market", 100, 1), "price not allowed on market orders"),
    ],
)
def test_malformed_orders_are_rejected_events(order: Order, message: str) -> None:
    book = make()
    [done] = book.submit(order)
    assert (done.reason, done.message, done.seq) == ("rejected", message, 1)


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (Order.market("o", "x", "hold", size=1), "invalid side"),
        (Order("o", "x", SELL, "market", None, 1, None, "IOC", True), "post only requires limit"),
        (Order.market("o", "x", BUY, size=1, stp="zz"), "invalid stp"),
        (Order.market("o", "x", BUY, size=True), "size too small"),  # a bool is not a size
        (Order.limit("o", "x", "hold", 100, 1), "invalid side"),
        (Order.limit("o", "x", BUY, 100.0, 1), "invalid price"),  # type: ignore[arg-type]
    ],
)
def test_malformed_orders_are_rejected_on_a_busy_book_without_touching_it(
    order: Order, message: str
) -> None:
    # The same rules as on an empty book, where the fast paths (a GTC limit that rests, a
    # market order by size) would otherwise have work to do.
    book = make()
    sell(book, "a", 101, 5)
    buy(book, "b", 99, 5)
    [done] = book.submit(order)
    assert (done.reason, done.message, done.seq) == ("rejected", message, 3)
    assert book.orders(SELL) == [(101, 5, "a")] and book.orders(BUY) == [(99, 5, "b")]
    book._check()


# ---------------------------------------------------------------- sequence, queries, snapshot


def test_every_state_change_takes_the_next_sequence_number() -> None:
    book = make()
    seqs: list[int] = []
    for events in (
        book.submit(Order.limit("a", "s", SELL, 100, 2)),
        book.submit(Order.limit("b", "s", SELL, 100, 2)),
        book.submit(Order.limit("z", "s", SELL, 100, 0)),
        book.cancel("nope"),
        book.submit(Order.limit("t", "x", BUY, 100, 3)),
        book.cancel("b"),
    ):
        seqs += [e.seq for e in events if not isinstance(e, CancelRejected)]
    assert seqs == list(range(1, book.seq + 1)) and book.seq == 8


def test_depth_aggregates_levels_best_first_and_limits_to_n() -> None:
    book = make()
    buy(book, "a", 99, 1)
    buy(book, "b", 99, 2)
    buy(book, "c", 97, 5)
    buy(book, "d", 98, 1)
    assert book.depth(BUY) == [(99, 3, 2), (98, 1, 1), (97, 5, 1)]
    assert book.depth(BUY, 2) == [(99, 3, 2), (98, 1, 1)]
    assert book.depth(SELL, 5) == []
    assert book.orders(BUY) == [(99, 1, "a"), (99, 2, "b"), (98, 1, "d"), (97, 5, "c")]
    with pytest.raises(ValueError):
        book.depth("up")


def test_snapshot_is_plain_data_and_restore_continues_identically() -> None:
    book = make(quote_units_per_tick_lot=100, min_size_lots=2, taker_fee=Fraction(1, 400))
    sell(book, "a", 100, 5, account="u1")
    sell(book, "b", 101, 5, account="u2")
    buy(book, "c", 98, 4, account="u3")
    book.submit(Order.limit("d", "u3", BUY, 100, 2, stp="co"))
    book.cancel("c")
    snap = json.loads(json.dumps(book.snapshot()))
    assert snap == book.snapshot()
    copy = OrderBook.restore(snap)
    copy._check()
    assert copy.seq == book.seq and copy.taker_fee == Fraction(1, 400)
    for b in (book, copy):
        assert b.orders(SELL) == [(100, 3, "a"), (101, 5, "b")]
    tail = [
        Order.limit("e", "u4", BUY, 101, 6),
        Order.market("f", "u1", BUY, funds=50_000),
        Order.limit("g", "u2", SELL, 99, 4),
    ]
    assert [book.submit(o) for o in tail] == [copy.submit(o) for o in tail]


def test_restore_from_database_rows_with_rules_given_separately() -> None:
    rows = [
        {"id": "y", "account": "b", "side": SELL, "price": 105, "size": 1, "stp": "co",
         "priority": 9},
        {"id": "x", "account": "a", "side": SELL, "price": 105, "size": 2, "stp": "dc",
         "priority": 4},
    ]  # fmt: skip
    book = OrderBook.restore({"seq": 12, "orders": rows}, rules={"quote_units_per_tick_lot": 1})
    assert book.orders(SELL) == [(105, 2, "x"), (105, 1, "y")]
    assert book.submit(Order.limit("n", "c", BUY, 1, 1))[0].seq == 13


@pytest.mark.parametrize(
    "rows",
    [
        [{"id": "a", "side": BUY, "price": 10, "priority": 1},
         {"id": "b", "side": SELL, "price": 10, "priority": 2}],  # crossed
        [{"id": "a", "side": BUY, "price": 10, "priority": 1},
         {"id": "a", "side": BUY, "price": 9, "priority": 2}],  # duplicate id
        [{"id": "a", "side": BUY, "price": 10, "priority": 1},
         {"id": "b", "side": BUY, "price": 9, "priority": 1}],  # duplicate priority
        [{"id": "a", "side": BUY, "price": 10, "priority": 99}],  # priority past seq
    ],
)  # fmt: skip
def test_restore_refuses_an_impossible_book(rows: list[dict]) -> None:
    full = [{"account": "x", "size": 1, "stp": "dc", **r} for r in rows]
    with pytest.raises(ValueError):
        OrderBook.restore({"seq": 5, "orders": full}, rules={"quote_units_per_tick_lot": 1})


def test_the_engine_module_imports_nothing_that_does_io() -> None:
    allowed = {"__future__", "bisect", "collections", "collections.abc", "fractions",
               "itertools", "typing"}  # fmt: skip
    files = [Path(engine_module.__file__)]
    if files[0].name == "__init__.py":
        files = sorted(files[0].parent.glob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside the engine package
                    continue
                names = {node.module or ""}
            else:
                continue
            assert names <= allowed, (path, names)


def test_the_example_in_the_module_docstring_runs() -> None:
    result = doctest.testmod(engine_module)
    assert result.attempted >= 5 and result.failed == 0
