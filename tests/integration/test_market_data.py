"""Market data end to end: the matcher publishes to Redis, the REST routes read it back, and
both agree with the engine's book and the trades in Postgres."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.core import market_history, wire
from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.market_keys import keys_for
from chalicelib.marketdata import market_data
from chalicelib.platform.cache import redis_client
from tests.integration.market import (
    PID,
    FeedTap,
    engine_book,
    engine_l2,
    engine_l3,
    funded_users,
    get,
    random_orders,
    rest_client,
)
from tests.integration.orderflow import Flow


def _shadow_matches_engine(m: Any) -> None:
    """The publisher's shadow (what it diffs from) equals the engine's own book."""
    w = m.workers[PID]
    pub, book = w.publisher, w._loaded.book
    for side in ("buy", "sell"):
        shadow = sorted(
            ((p, lv[0], lv[1]) for p, lv in pub.shadow.levels[side].items()), reverse=side == "buy"
        )
        assert shadow == book.depth(side)


@pytest.mark.parametrize("seed", [1, 2])
def test_books_and_ticker_match_the_engine_after_random_orders(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    users = funded_users(flow, 4)
    with flow.matcher([PID]) as m:
        random_orders(flow, rng, 150, users)
        flow.drain()
        _shadow_matches_engine(m)
    loaded = engine_book(flow)
    l2, l3 = engine_l2(loaded), engine_l3(loaded)
    assert l2["buy"] and l2["sell"] and flow.trades(PID), "the scenario should trade and rest"
    with rest_client(flow.cfg, monkeypatch) as api:
        status, b2, _ = get(api, f"/products/{PID}/book?level=2")
        assert status == 200 and b2["sequence"] == loaded.book.seq
        assert (b2["bids"], b2["asks"]) == (l2["buy"][:50], l2["sell"][:50])
        _, b1, _ = get(api, f"/products/{PID}/book")
        assert (b1["bids"], b1["asks"]) == (l2["buy"][:1], l2["sell"][:1])
        _, b3, _ = get(api, f"/products/{PID}/book?level=3")
        assert (b3["bids"], b3["asks"], b3["sequence"]) == (l3["buy"], l3["sell"], loaded.book.seq)

        last = flow.trades(PID)[-1]
        p = PRODUCTS[PID]
        _, t, _ = get(api, f"/products/{PID}/ticker")
        assert t["trade_id"] == last["trade_id"] and t["sequence"] == loaded.book.seq
        assert (t["price"], t["size"]) == (wire.price(last["price"], p), wire.size(last["size"], p))
        assert (t["bid"], t["ask"]) == (l2["buy"][0][0], l2["sell"][0][0])
        volume = sum(tr["size"] for tr in flow.trades(PID))
        assert t["volume"] == wire.size(volume, p)
        assert t["time"].endswith("Z")
        _, s, _ = get(api, f"/products/{PID}/stats")
        prices = [tr["price"] for tr in flow.trades(PID)]
        assert s == {
            "open": wire.price(prices[0], p),
            "high": wire.price(max(prices), p),
            "low": wire.price(min(prices), p),
            "last": wire.price(prices[-1], p),
            "volume": wire.size(volume, p),
        }
        # Postgres fallback (Redis lost, matcher not yet back): the same answers.
        _drop_namespace(flow)
        _, pg2, _ = get(api, f"/products/{PID}/book?level=2")
        _, pg3, _ = get(api, f"/products/{PID}/book?level=3")
        _, pgt, _ = get(api, f"/products/{PID}/ticker")
        _, pgs, _ = get(api, f"/products/{PID}/stats")
        assert {k: v for k, v in pg2.items() if k != "time"} == {
            k: v for k, v in b2.items() if k != "time"
        }
        assert (pg3["bids"], pg3["asks"]) == (b3["bids"], b3["asks"])
        assert pgs == s
        assert {k: pgt[k] for k in ("trade_id", "price", "size", "bid", "ask", "volume")} == {
            k: t[k] for k in ("trade_id", "price", "size", "bid", "ask", "volume")
        }


def _drop_namespace(flow: Flow) -> None:
    """What a Redis flush does to this test's market data (without touching anyone else's)."""
    r = redis_client(flow.cfg.redis_url)
    keys = list(r.scan_iter(match=f"md:{flow.cfg.queue_prefix}:*", count=1000))
    if keys:
        r.delete(*keys)


def test_level2_updates_applied_to_a_snapshot_reproduce_the_next(flow: Flow) -> None:
    rng = random.Random(7)
    users = funded_users(flow, 3)
    r = redis_client(flow.cfg.redis_url)
    keys = keys_for(flow.cfg)
    tap = FeedTap(flow.cfg)
    try:
        with flow.matcher([PID]):
            reset = tap.wait_for(lambda msg: msg.get("reset"))
            seq, bids, asks = market_data.book_snapshot(r, keys, PID, 2)
            assert seq == reset["sequence"]
            book = {"buy": {b[0]: b[1] for b in bids}, "sell": {a[0]: a[1] for a in asks}}
            random_orders(flow, rng, 120, users)
            flow.drain()
            tap.pump(0.3)
            last = seq
            for msg in tap.messages:
                if msg.get("reset") or msg["sequence"] <= seq:
                    continue
                assert msg["prev_sequence"] == last, "a gap in the feed"
                last = msg["sequence"]
                for side, price, size in msg["l2"]:
                    if size == "0":
                        book[side].pop(price)
                    else:
                        book[side][price] = size
            seq2, bids2, asks2 = market_data.book_snapshot(r, keys, PID, 2)
    finally:
        tap.close()
    assert last == seq2
    assert book["buy"] == {b[0]: b[1] for b in bids2}
    assert book["sell"] == {a[0]: a[1] for a in asks2}
    l2 = engine_l2(engine_book(flow))
    assert [b[:2] for b in l2["buy"]] == [b[:2] for b in bids2]


def _recompute(trades: list[dict[str, Any]], g: int) -> list[list[Any]]:
    p = PRODUCTS[PID]
    buckets: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        buckets[int(t["created_at"].timestamp()) // g * g].append(t)
    out = []
    for b in sorted(buckets, reverse=True):
        ts = sorted(buckets[b], key=lambda t: t["trade_id"])
        prices = [t["price"] for t in ts]
        out.append(
            [
                b,
                wire.price(min(prices), p),
                wire.price(max(prices), p),
                wire.price(prices[0], p),
                wire.price(prices[-1], p),
                wire.size(sum(t["size"] for t in ts), p),
            ]
        )
    return out


def test_candles_equal_a_recomputation_from_the_trades(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    users = funded_users(flow, 3)
    with flow.matcher([PID]):
        random_orders(flow, rng, 80, users)
        flow.drain()
    trades = flow.trades(PID)
    assert trades
    with rest_client(flow.cfg, monkeypatch) as api:
        for g in (60, 300, 900, 3600, 21600, 86400):
            status, from_redis, _ = get(api, f"/products/{PID}/candles?granularity={g}")
            assert status == 200
            assert from_redis == _recompute(trades, g), g
            # The same range from Postgres (a start before what Redis keeps).
            start = int(trades[0]["created_at"].timestamp()) // g * g
            with flow.conn.transaction():
                rows = market_history.candles(flow.conn, PID, g, start, start + 10 * g)
            p = PRODUCTS[PID]
            assert [
                [
                    c.time,
                    wire.price(c.low, p),
                    wire.price(c.high, p),
                    wire.price(c.open, p),
                    wire.price(c.close, p),
                    wire.size(c.volume, p),
                ]
                for c in rows
            ] == _recompute(trades, g)
        r = redis_client(flow.cfg.redis_url)
        r.set(keys_for(flow.cfg).candles_since(PID), 2**40)  # Redis "too young": Postgres answers
        iso = wire.iso(trades[0]["created_at"])
        _, from_pg, _ = get(api, f"/products/{PID}/candles?granularity=60&start={iso}")
        assert from_pg == _recompute(trades, 60)


def test_trades_page_by_cursor_from_redis_then_postgres(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(5)
    users = funded_users(flow, 3)
    with flow.matcher([PID]):
        random_orders(flow, rng, 120, users)
        flow.drain()
    trades = flow.trades(PID)
    n = len(trades)
    assert n >= 12
    p = PRODUCTS[PID]
    expected = [
        {
            "time": wire.iso(t["created_at"]),
            "trade_id": t["trade_id"],
            "price": wire.price(t["price"], p),
            "size": wire.size(t["size"], p),
            "side": t["maker_side"],
        }
        for t in reversed(trades)
    ]
    r = redis_client(flow.cfg.redis_url)
    stream = keys_for(flow.cfg).trades(PID)
    with rest_client(flow.cfg, monkeypatch) as api:
        for trimmed in (False, True):
            if trimmed:  # the stream keeps only the newest half: the rest comes from Postgres
                r.xtrim(stream, minid=f"{n // 2}-0")
            pages, after = [], None
            while True:
                path = f"/products/{PID}/trades?limit=5" + (f"&after={after}" if after else "")
                status, page, headers = get(api, path)
                assert status == 200
                if not page:
                    break
                pages += page
                assert headers["CB-BEFORE"] == str(page[0]["trade_id"])
                after = headers["CB-AFTER"]
            assert pages == expected
            # And back up with before=: the newer page, still newest first.
            _, newer, _ = get(api, f"/products/{PID}/trades?limit=3&before=2")
            assert newer == expected[::-1][2:5][::-1]


def test_redis_flushed_the_matcher_republishes_a_snapshot(flow: Flow) -> None:
    rng = random.Random(11)
    users = funded_users(flow, 3)
    r = redis_client(flow.cfg.redis_url)
    keys = keys_for(flow.cfg)
    with flow.matcher([PID]) as m:
        random_orders(flow, rng, 60, users)
        flow.drain()
        worker = m.workers[PID]
        before = worker.publisher.full_publishes
        _drop_namespace(flow)
        # Idle: the worker's empty receive notices the missing book and republishes.
        deadline = time.monotonic() + 10
        # Wait on the counter, not the key: the key is written before the counter moves, and
        # on a loaded host the publisher thread can sit between the two.
        while worker.publisher.full_publishes == before:
            assert time.monotonic() < deadline, "no republish while idle"
            time.sleep(0.05)
        assert worker.publisher.full_publishes == before + 1
        assert r.hget(keys.book(PID), "sequence") is not None
        _drop_namespace(flow)
        # Busy: the next batch finds the book key gone and republishes everything.
        random_orders(flow, rng, 5, users)
        flow.drain()
        _shadow_matches_engine(m)
    loaded = engine_book(flow)
    seq, bids, asks = market_data.book_snapshot(r, keys, PID, 2)
    l2 = engine_l2(loaded)
    assert (seq, bids, asks) == (loaded.book.seq, l2["buy"], l2["sell"])
    entries = r.xrange(keys.trades(PID))
    ids = [int(e[0].split(b"-")[0]) for e in entries]
    assert ids == [t["trade_id"] for t in flow.trades(PID)]  # reseeded, contiguous
    assert r.exists(keys.ticker(PID)) and r.exists(keys.candles(PID))


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/products/NOPE-USD/book", 404, "NotFound"),
        ("/products/NOPE-USD/ticker", 404, "NotFound"),
        ("/products/NOPE-USD/stats", 404, "NotFound"),
        ("/products/NOPE-USD/trades", 404, "NotFound"),
        ("/products/NOPE-USD/candles", 404, "NotFound"),
        (f"/products/{PID}/book?level=4", 400, "level must be 1, 2 or 3"),
        (f"/products/{PID}/book?level=", 400, "level must be 1, 2 or 3"),
        (f"/products/{PID}/trades?limit=0", 400, "limit must be an integer from 1 to 1000"),
        (
            f"/products/{PID}/trades?after=x",
            400,
            "after must be a cursor from CB-BEFORE or CB-AFTER",
        ),
        (f"/products/{PID}/trades?before=1&after=2", 400, "use before or after, not both"),
        (f"/products/{PID}/candles?granularity=7", 400, "granularity must be one of"),
        (f"/products/{PID}/candles?start=yesterday", 400, "start must be an ISO 8601"),
        (f"/products/{PID}/candles?start=2024-01-01T00:00:00", 400, "start must carry a time"),
        (
            f"/products/{PID}/candles?granularity=60&start=2024-01-01T00:00:00Z"
            "&end=2024-01-02T00:00:00Z",
            400,
            "granularity too small",
        ),
        (
            f"/products/{PID}/candles?start=2024-01-02T00:00:00Z&end=2024-01-01T00:00:00Z",
            400,
            "start must not be after end",
        ),
    ],
)
def test_rest_validation(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, path: str, status: int, message: str
) -> None:
    with rest_client(flow.cfg, monkeypatch) as api:
        got, body, _ = get(api, path)
    assert got == status and body["message"].startswith(message), body


def test_empty_product_answers_without_a_matcher(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    with rest_client(flow.cfg, monkeypatch) as api:
        assert get(api, f"/products/{PID}/book?level=2")[1]["bids"] == []
        _, t, _ = get(api, f"/products/{PID}/ticker")
        assert t["trade_id"] is None and t["volume"] == "0.00000000"
        assert get(api, f"/products/{PID}/trades")[1] == []
        assert get(api, f"/products/{PID}/candles?granularity=3600")[1] == []
        _, s, _ = get(api, f"/products/{PID}/stats")
        assert s["last"] is None and s["volume"] == "0.00000000"
    assert Decimal(t["volume"]) == 0
