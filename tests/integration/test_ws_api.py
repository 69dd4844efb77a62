"""The API Gateway WebSocket side of the feed (chalicelib/ws.py, chalicelib/ws_fanout.py) on real
Redis, with moto's management API (it records posts but never answers GoneException, so the gone
case uses a small fake client with the same method and exception names)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

from chalicelib import ws, ws_fanout
from chalicelib.cache import redis_client
from chalicelib.config import Settings
from chalicelib.market_keys import keys_for

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
    assert ws_fanout.fan_out(subs, post, PID, msg) == 4

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
    assert ws_fanout.fan_out(subs, ws.poster(api), PID, msg) == 3
    assert [c for c, _ in api.posts] == ["live"] * 3
    assert subs.connections("level2", PID) == {"live"}
    assert subs.connections("matches", PID) == {"live"}
    assert not subs.r.exists(f"ws:{subs.ns}:conn:dead")
