"""The WebSocket feed (`exchange feed`) against a running matcher: snapshot then ordered level2
updates with no gap through a burst, gap detection, matches and ticker, the user channel."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from typing import Any

import psycopg
import pytest

from chalicelib.core.market_keys import keys_for
from chalicelib.identity import apikeys, sessions, signing
from chalicelib.platform.cache import redis_client
from feed.client import FeedClient
from tests.integration.market import (
    PID,
    engine_book,
    engine_l2,
    feed_server,
    funded_users,
    random_orders,
    set_env,
)
from tests.integration.orderflow import Flow


def _url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


async def _until(feed: FeedClient, pred: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Receive until pred(feed) holds; returns what came."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not pred(feed):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; last messages {got[-3:]}"
        try:
            got.append(await asyncio.wait_for(feed.recv(), left))
        except TimeoutError:
            continue
    return got


def _book_of(feed: FeedClient) -> dict[str, list[str]]:
    b = feed.books[PID]
    return {
        "buy": sorted(b.bids.items(), key=lambda kv: float(kv[0]), reverse=True),
        "sell": sorted(b.asks.items(), key=lambda kv: float(kv[0])),
    }


def _engine(flow: Flow) -> tuple[int, dict[str, list[tuple[str, str]]]]:
    loaded = engine_book(flow)
    l2 = engine_l2(loaded)
    return loaded.book.seq, {s: [(p, sz) for p, sz, _ in l2[s]] for s in l2}


def test_snapshot_then_ordered_updates_with_no_gap_through_a_burst(flow: Flow) -> None:
    users = funded_users(flow, 4)
    rng = random.Random(21)
    with flow.matcher([PID]), feed_server(flow.cfg) as server:
        # The matcher's first publish, so that the feed has a snapshot to give.
        random_orders(flow, rng, 5, users)
        flow.drain()

        async def scenario() -> tuple[FeedClient, list[dict[str, Any]]]:
            async with FeedClient.connect(_url(server)) as feed:
                await feed.subscribe(["level2", "matches", "ticker"], [PID])
                got = await _until(feed, lambda f: PID in f.books)
                await asyncio.to_thread(random_orders, flow, rng, 200, users)
                await asyncio.to_thread(flow.drain)
                seq = int(
                    redis_client(flow.cfg.redis_url).hget(keys_for(flow.cfg).book(PID), "sequence")
                )
                # The feed's level2 sequence is the last sequence that changed a level: wait
                # until the feed has followed the matcher to its last batch.
                await _until(feed, lambda f: server.books[PID].seq == seq, 20)
                got += await _until(feed, lambda f: f.books[PID].sequence == server.books[PID].sent)
                # The batch's matches, then its ticker, follow its l2update.
                last_trade = flow.trades(PID)[-1]["trade_id"]
                while not any(
                    m.get("trade_id") == last_trade and m["type"] == "ticker" for m in got
                ):
                    got.append(await asyncio.wait_for(feed.recv(), 10))
                return feed, got

        feed, got = asyncio.run(scenario())
    assert got[0]["type"] == "subscriptions"
    assert feed.gaps == 0
    updates = [m for m in got if m["type"] == "l2update"]
    assert len(updates) > 20
    for a, b in itertools.pairwise(updates):
        assert b["prev_sequence"] == a["sequence"] > a["prev_sequence"]
    _, book = _engine(flow)
    assert _book_of(feed) == book
    matches = [m["trade_id"] for m in got if m["type"] == "match"]
    trade_ids = [t["trade_id"] for t in flow.trades(PID)]
    assert matches == list(range(matches[0], trade_ids[-1] + 1))  # every one, in order
    last = [m["trade_id"] for m in got if m["type"] == "last_match"]
    assert last == [matches[0] - 1] if matches[0] > 1 else not last
    tickers = [m for m in got if m["type"] == "ticker"]
    assert tickers and tickers[-1]["trade_id"] == trade_ids[-1]


def test_gaps_are_detected_and_healed(flow: Flow) -> None:
    users = funded_users(flow, 3)
    rng = random.Random(4)
    r = redis_client(flow.cfg.redis_url)
    keys = keys_for(flow.cfg)
    with flow.matcher([PID]), feed_server(flow.cfg) as server:
        random_orders(flow, rng, 30, users)
        flow.drain()

        async def scenario() -> FeedClient:
            async with FeedClient.connect(_url(server)) as feed:
                await feed.subscribe(["level2"], [PID])
                await _until(feed, lambda f: PID in f.books)
                # 1. The server misses a matcher message (a forged one that skips ahead):
                #    it reloads the book from Redis and sends every subscriber a new snapshot.
                resyncs = server.stats["resyncs"]
                seq = server.books[PID].seq
                forged = {
                    "product_id": PID,
                    "sequence": seq + 10,
                    "prev_sequence": seq + 5,
                    "time": "",
                    "l2": [["buy", "1.00000000", "1.00000000"]],
                    "matches": [],
                    "ticker": None,
                    "user": [],
                }
                r.publish(keys.feed(PID), json.dumps(forged))
                got = await _until(feed, lambda f: server.stats["resyncs"] > resyncs)
                got += await _until(feed, lambda f: PID in f.books)
                snap = [m for m in [*got] if m["type"] == "snapshot"]
                assert snap or feed.books[PID].sequence == server.books[PID].sent
                assert "1.00000000" not in feed.books[PID].bids
                # 2. The client misses an update: it notices at the next one and resubscribes.
                feed.books[PID].sequence -= 1
                await asyncio.to_thread(random_orders, flow, rng, 30, users)
                await asyncio.to_thread(flow.drain)
                await _until(feed, lambda f: f.gaps == 1 and PID in f.books)
                seq = int(r.hget(keys.book(PID), "sequence"))
                await _until(feed, lambda f: server.books[PID].seq == seq)
                await _until(feed, lambda f: f.books[PID].sequence == server.books[PID].sent)
                return feed

        feed = asyncio.run(scenario())
    assert feed.gaps == 1
    _, book = _engine(flow)
    assert _book_of(feed) == book


def test_user_channel_shows_only_the_users_own_events(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(flow.cfg, monkeypatch)
    alice, bob, carol = funded_users(flow, 3)
    token = sessions.create(alice).token
    with psycopg.connect(flow.cfg.database_url, autocommit=True) as conn:
        key = apikeys.create(conn, bob, ["view"], "bob's phrase")
    with flow.matcher([PID]), feed_server(flow.cfg) as server:

        async def scenario() -> dict[str, list[dict[str, Any]]]:
            async with (
                FeedClient.connect(_url(server)) as a,
                FeedClient.connect(_url(server)) as b,
                FeedClient.connect(_url(server)) as bad,
            ):
                await a.subscribe(["user"], [PID], token=token)
                ts = str(time.time())
                sig = signing.sign(key["secret"], ts, "GET", "/users/self/verify", "")
                await b.subscribe(
                    ["user"],
                    [PID],
                    key=key["key"],
                    passphrase=key["passphrase"],
                    timestamp=ts,
                    signature=sig,
                )
                await bad.subscribe(["user"], [PID], token="not a session")
                err = await asyncio.wait_for(bad.recv(), 10)
                assert err["type"] == "error" and err["reason"] == "Unauthorized"
                for f in (a, b):
                    assert (await asyncio.wait_for(f.recv(), 10))["type"] == "subscriptions"
                ask = flow.place(alice, PID, "sell", "30000.00", "0.5")
                flow.place(carol, PID, "buy", "29000.00", "0.1")  # nobody's business
                bid = flow.place(bob, PID, "buy", "30000.00", "0.2")
                flow.drain()
                out: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
                for name, f in (("a", a), ("b", b)):
                    want = 3  # a: received open match; b: received match done
                    while len(out[name]) < want:
                        out[name].append(await asyncio.wait_for(f.recv(), 10))
                    assert all(m["user_id"] == (alice if name == "a" else bob) for m in out[name])
                assert [m["order_id"] for m in out["a"][:2]] == [ask, ask]
                assert out["b"][0]["order_id"] == bid
                return out

        out = asyncio.run(scenario())
    kinds_a = [m["type"] for m in out["a"]]
    kinds_b = [m["type"] for m in out["b"]]
    assert kinds_a[:3] == ["received", "open", "match"] and out["a"][2]["liquidity"] == "M"
    assert kinds_b == ["received", "match", "done"] and out["b"][1]["liquidity"] == "T"
    assert out["b"][2]["reason"] == "filled"
