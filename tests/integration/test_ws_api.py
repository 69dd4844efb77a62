"""The API Gateway WebSocket side of the feed (chalicelib/marketdata/ws.py, feed/fanout.py) on real
Redis, with moto's management API (it records posts but never answers GoneException, so the gone
case uses a small fake client with the same method and exception names)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from moto import mock_aws
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

from chalicelib.core.market_keys import keys_for
from chalicelib.marketdata import ws
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import Settings
from feed import fanout

PID = "BTC-USD"
CALLBACK = "https://abc123.execute-api.us-east-1.amazonaws.com/test"


@pytest.fixture
def aws(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("WS_CALLBACK_URL", CALLBACK)
    with mock_aws():
        yield settings


def _event(cid: str, route: str, body: Any = None) -> dict[str, Any]:
    return {
        "requestContext": {
            "routeKey": route,
            "connectionId": cid,
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "stage": "test",
            "eventType": route.strip("$").upper(),
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def _posted(cid: str) -> list[dict[str, Any]]:
    """The messages moto recorded for a connection (it concatenates the posted bytes)."""
    data = apigatewaymanagementapi_backends["123456789012"]["us-east-1"].connections[cid].data
    text, out, at = data.decode(), [], 0
    decoder = json.JSONDecoder()
    while at < len(text):
        msg, at = decoder.raw_decode(text, at)
        out.append(msg)
    return out


def _seed_book(cfg: Settings) -> None:
    keys, r = keys_for(cfg), redis_client(cfg.redis_url)
    r.hset(keys.book(PID), mapping={"sequence": 7, "time": "2026-01-01T00:00:00Z"})
    r.hset(keys.l2(PID, "buy"), mapping={"100.00": "1.5 2", "99.00": "2 1"})
    r.hset(keys.l2(PID, "sell"), mapping={"101.00": "0.5 1"})


def test_subscribe_records_and_posts_the_snapshot(aws: Settings) -> None:
    import app

    _seed_book(aws)
    handlers = {
        "$connect": app.ws_connect,
        "$default": app.ws_message,
        "$disconnect": app.ws_disconnect,
    }
    handlers["$connect"](_event("c1", "$connect"), None)
    body = {"type": "subscribe", "product_ids": [PID], "channels": ["level2", "ticker"]}
    reply = handlers["$default"](_event("c1", "$default", body), None)
    assert reply == {"statusCode": 200}

    subs = ws.subscriptions_store()
    assert subs.connections("level2", PID) == {"c1"}
    assert subs.connections("ticker", PID) == {"c1"}
    assert subs.r.ttl(f"ws:{subs.ns}:conn:c1") > 3600
    sub, snap = _posted("c1")
    assert sub == {
        "type": "subscriptions",
        "channels": [
            {"name": "level2", "product_ids": [PID]},
            {"name": "ticker", "product_ids": [PID]},
        ],
    }
    assert snap == {
        "type": "snapshot",
        "product_id": PID,
        "sequence": 7,
        "bids": [["100.00", "1.5"], ["99.00", "2"]],
        "asks": [["101.00", "0.5"]],
    }

    bad = {"type": "subscribe", "product_ids": ["NOPE-USD"], "channels": ["level2"]}
    handlers["$default"](_event("c2", "$default", bad), None)
    assert _posted("c2")[0]["type"] == "error"

    unsub = {"type": "unsubscribe", "product_ids": [PID], "channels": ["ticker"]}
    handlers["$default"](_event("c1", "$default", unsub), None)
    assert subs.connections("ticker", PID) == set()
    assert _posted("c1")[-1]["channels"] == [{"name": "level2", "product_ids": [PID]}]

    handlers["$disconnect"](_event("c1", "$disconnect"), None)
    assert subs.connections("level2", PID) == set()
    assert not subs.r.exists(f"ws:{subs.ns}:conn:c1")


def test_fan_out_reaches_only_subscribers(aws: Settings) -> None:
    subs = ws.subscriptions_store()
    subs.add("l2", {"level2": {PID}})
    subs.add("tk", {"ticker": {PID}, "matches": {PID}})
    subs.add("other", {"level2": {"ETH-USD"}})
    subs.add("alice", {"user": {PID}}, user_id="u-alice")
    subs.add("bob", {"user": {PID}}, user_id="u-bob")
    match = {"type": "match", "trade_id": 1, "product_id": PID}
    msg = {
        "product_id": PID,
        "sequence": 9,
        "prev_sequence": 7,
        "time": "2026-01-01T00:00:01Z",
        "l2": [["buy", "100.00", "0"]],
        "matches": [match],
        "ticker": {"type": "ticker", "product_id": PID, "price": "100.00"},
        "user": [{"type": "done", "user_id": "u-alice", "order_id": "o1"}],
    }
    post = ws.poster(ws.management_client(CALLBACK))
    assert fanout.fan_out(subs, post, PID, msg) == 4

    [update] = _posted("l2")
    assert update["type"] == "l2update"
    assert (update["sequence"], update["prev_sequence"]) == (9, 7)
    assert update["changes"] == [["buy", "100.00", "0"]]
    assert [m["type"] for m in _posted("tk")] == ["match", "ticker"]
    assert [m["order_id"] for m in _posted("alice")] == ["o1"]
    assert _posted("other") == [] and _posted("bob") == []


class _Gone(Exception):
    pass


class _FakeManagementApi:
    """The two names the poster uses; `gone` ids answer GoneException."""

    class exceptions:
        GoneException = _Gone

    def __init__(self, gone: set[str]) -> None:
        self.gone = gone
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        if ConnectionId in self.gone:
            raise _Gone(ConnectionId)
        self.posts.append((ConnectionId, json.loads(Data)))


def test_gone_connections_are_dropped(settings: Settings) -> None:
    subs = ws.subscriptions_store()
    subs.add("live", {"level2": {PID}, "matches": {PID}})
    subs.add("dead", {"level2": {PID}, "matches": {PID}})
    api = _FakeManagementApi(gone={"dead"})
    msg = {
        "product_id": PID,
        "sequence": 2,
        "prev_sequence": 1,
        "time": "t",
        "l2": [],
        "matches": [{"type": "match", "trade_id": 1}, {"type": "match", "trade_id": 2}],
        "ticker": None,
        "user": [],
    }
    assert fanout.fan_out(subs, ws.poster(api), PID, msg) == 3
    assert [c for c, _ in api.posts] == ["live"] * 3
    assert subs.connections("level2", PID) == {"live"}
    assert subs.connections("matches", PID) == {"live"}
    assert not subs.r.exists(f"ws:{subs.ns}:conn:dead")


# ---------------------------------------------------------------------- concurrent fan-out


class _SlowPost:
    """A `Post` that sleeps per call (fixed or random), records (connection, message) in the
    order the posts finished, and the most posts it ever saw in flight at once. Connections in
    `gone` answer Gone, and those in `broken` fail, from their `after`-th message on."""

    def __init__(
        self,
        delay: float = 0.05,
        jitter: float = 0.0,
        gone: Iterable[str] = (),
        broken: Iterable[str] = (),
        after: int = 1,
    ) -> None:
        self.delay, self.jitter = delay, jitter
        self.gone, self.broken, self.after = set(gone), set(broken), after
        self.rng = random.Random(7)
        self.lock = threading.Lock()
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.calls: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0

    def __call__(self, cid: str, msg: dict[str, Any]) -> None:
        with self.lock:
            n = self.calls[cid] = self.calls.get(cid, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            delay = self.delay + self.rng.uniform(0, self.jitter)
        try:
            time.sleep(delay)
            if n > self.after and cid in self.gone:
                raise ws.Gone(cid)
            if n > self.after and cid in self.broken:
                raise RuntimeError("throttled")
            with self.lock:
                self.posts.append((cid, msg))
        finally:
            with self.lock:
                self.in_flight -= 1

    def to(self, cid: str) -> list[dict[str, Any]]:
        return [m for c, m in self.posts if c == cid]


def _batch(seq: int, matches: int = 2) -> dict[str, Any]:
    return {
        "product_id": PID,
        "sequence": seq,
        "prev_sequence": seq - 1,
        "time": f"2026-01-01T00:00:{seq:02}Z",
        "l2": [["buy", "100.00", str(seq)]],
        "matches": [{"type": "match", "trade_id": seq * 10 + i} for i in range(matches)],
        "ticker": {"type": "ticker", "product_id": PID, "sequence": seq},
        "user": [],
    }


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as p:
        yield p


def test_fan_out_posts_to_connections_concurrently(
    settings: Settings, pool: ThreadPoolExecutor
) -> None:
    subs = ws.subscriptions_store()
    cids = [f"c{i:02}" for i in range(20)]
    for cid in cids:
        subs.add(cid, {"level2": {PID}})
    post = _SlowPost(delay=0.05)
    assert fanout.fan_out(subs, post, PID, _batch(2), pool) == 20
    assert 1 < post.max_in_flight <= 4  # the pool's size bounds it
    assert sorted(c for c, _ in post.posts) == cids
    assert {m["sequence"] for _, m in post.posts} == {2}


def test_fan_out_keeps_each_connections_order(settings: Settings, pool: ThreadPoolExecutor) -> None:
    subs = ws.subscriptions_store()
    everything = {"level2": {PID}, "matches": {PID}, "ticker": {PID}}
    cids = [f"c{i:02}" for i in range(12)]
    for i, cid in enumerate(cids):
        subs.add(cid, everything if i % 3 else {"matches": {PID}})
    post = _SlowPost(delay=0.001, jitter=0.01)
    expected: dict[str, list[dict[str, Any]]] = {cid: [] for cid in cids}
    posted = 0
    for seq in (2, 3):
        msg = _batch(seq, matches=3)
        for targets, out in fanout.messages_for(subs, PID, msg):
            for cid in targets:
                expected[cid].append(out)
        posted += fanout.fan_out(subs, post, PID, msg, pool)
    assert posted == len(post.posts) == sum(map(len, expected.values()))
    assert post.max_in_flight > 1
    for cid in cids:
        assert post.to(cid) == expected[cid]
    l2 = [m for m in post.to("c01") if m["type"] == "l2update"]
    assert [(m["prev_sequence"], m["sequence"]) for m in l2] == [(1, 2), (2, 3)]
    assert [m["type"] for m in post.to("c00")] == ["match"] * 6


def test_gone_mid_batch_is_dropped_and_others_get_everything(
    settings: Settings, pool: ThreadPoolExecutor
) -> None:
    subs = ws.subscriptions_store()
    cids = ["dead", "flaky", *(f"c{i:02}" for i in range(6))]
    for cid in cids:
        subs.add(cid, {"level2": {PID}, "matches": {PID}})
    post = _SlowPost(delay=0.005, jitter=0.005, gone={"dead"}, broken={"flaky"}, after=1)
    # 3 messages each (l2update, 2 matches); "dead" and "flaky" fail at their 2nd
    assert fanout.fan_out(subs, post, PID, _batch(2), pool) == 6 * 3 + 1 + 1
    assert [m["type"] for m in post.to("dead")] == ["l2update"]
    assert [m["type"] for m in post.to("flaky")] == ["l2update"]
    for cid in cids[2:]:
        assert [m["type"] for m in post.to(cid)] == ["l2update", "match", "match"]
    assert "dead" not in subs.connections("level2", PID)
    assert not subs.r.exists(f"ws:{subs.ns}:conn:dead")
    assert "flaky" in subs.connections("level2", PID)  # an error is not a disconnect

    # the next batch message still reaches everyone left
    post.broken.clear()
    assert fanout.fan_out(subs, post, PID, _batch(3), pool) == 7 * 3
    assert "dead" not in {c for c, m in post.posts if m.get("sequence") == 3}


def test_run_follows_the_feed_channel_on_its_pool(settings: Settings) -> None:
    subs = ws.subscriptions_store()
    keys = keys_for(settings)
    cids = [f"c{i:02}" for i in range(8)]
    for cid in cids:
        subs.add(cid, {"level2": {PID}})
    post = _SlowPost(delay=0.02)
    stop = threading.Event()
    loop = threading.Thread(
        target=fanout.run, args=(subs, post, keys), kwargs={"stop": stop.is_set, "threads": 3}
    )
    loop.start()
    try:
        deadline = time.monotonic() + 10
        # a message for no product until the loop is subscribed (publish counts the receivers)
        while subs.r.publish(keys.feed("NOPE-USD"), "{}") == 0:
            assert time.monotonic() < deadline, "ws-fanout never subscribed"
            time.sleep(0.01)
        for seq in (2, 3):
            subs.r.publish(keys.feed(PID), json.dumps(_batch(seq)))
        while len(post.posts) < 2 * len(cids):
            assert time.monotonic() < deadline, f"only {len(post.posts)} posts"
            time.sleep(0.01)
    finally:
        stop.set()
        loop.join(timeout=5)
    assert not loop.is_alive()
    assert 1 < post.max_in_flight <= 3
    for cid in cids:
        assert [m["sequence"] for m in post.to(cid)] == [2, 3]
