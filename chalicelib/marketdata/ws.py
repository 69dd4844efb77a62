"""The market data feed on API Gateway WebSocket APIs: the Chalice handlers (registered in
app.py) and the Redis record of who is subscribed to what, which the fan-out
(feed/fanout.py) reads. The protocol is chalicelib/marketdata/feed_protocol.py, as for the local
server (feed/server.py); here a Lambda answers each client message and forgets it, so the
subscriptions live in Redis:

| key | type | holds |
|---|---|---|
| `ws:<ns>:sub:<channel>:<product>` | set | connection ids (level2, ticker, matches) |
| `ws:<ns>:user:<product>:<user_id>` | set | connection ids subscribed to that user's orders |
| `ws:<ns>:conn:<connection id>` | hash | `"<channel> <product>"` -> "1", and `user_id` |

Every key gets a TTL a little longer than API Gateway's longest connection (2 h), renewed on
each subscribe, so the record of a connection whose disconnect never ran ages out; a dead id left
in a shared set is dropped by the fan-out when API Gateway answers GoneException.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from chalicelib.core import level2
from chalicelib.core.market_keys import Keys, keys_for
from chalicelib.marketdata import feed_protocol as fp
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import settings
from chalicelib.platform.logs import logger

if TYPE_CHECKING:
    import redis
    from chalice.app import WebsocketEvent

TTL_S = 2 * 3600 + 600  # API Gateway closes any WebSocket connection after 2 hours
USER_ID = "user_id"

Post = Callable[[str, dict[str, Any]], None]  # (connection id, message); raises Gone


class Gone(Exception):
    """The connection no longer exists (API Gateway's GoneException)."""


class Subscriptions:
    """Who listens to what, in Redis (layout in the module docstring)."""

    def __init__(self, r: redis.Redis, namespace: str) -> None:
        self.r = r
        self.ns = namespace

    def _conn(self, cid: str) -> str:
        return f"ws:{self.ns}:conn:{cid}"

    def _sub(self, channel: str, product_id: str) -> str:
        return f"ws:{self.ns}:sub:{channel}:{product_id}"

    def _user(self, product_id: str, user_id: str) -> str:
        return f"ws:{self.ns}:user:{product_id}:{user_id}"

    def _set_of(self, field: str, user_id: str | None) -> str | None:
        channel, product_id = field.split(" ")
        if channel != "user":
            return self._sub(channel, product_id)
        return self._user(product_id, user_id) if user_id else None

    def add(self, cid: str, channels: dict[str, set[str]], user_id: str | None = None) -> None:
        pipe = self.r.pipeline(transaction=True)
        fields: dict[Any, Any] = {f"{c} {p}": "1" for c, ps in channels.items() for p in ps}
        if user_id is not None:
            fields[USER_ID] = user_id
        if fields:
            pipe.hset(self._conn(cid), mapping=fields)
        pipe.expire(self._conn(cid), TTL_S)
        for field in fields:
            if field != USER_ID:
                key = self._set_of(field, user_id)
                if key is not None:
                    pipe.sadd(key, cid)
                    pipe.expire(key, TTL_S)
        pipe.execute()

    def remove(self, cid: str, channels: dict[str, set[str]]) -> None:
        user_id = self._user_id(cid)
        fields = [f"{c} {p}" for c, ps in channels.items() for p in ps]
        pipe = self.r.pipeline(transaction=True)
        for field in fields:
            pipe.hdel(self._conn(cid), field)
            key = self._set_of(field, user_id)
            if key is not None:
                pipe.srem(key, cid)
        pipe.execute()

    def drop(self, cid: str) -> None:
        """Forget the connection everywhere (disconnect, or gone)."""
        raw = self.r.hgetall(self._conn(cid))
        fields = {_s(k): _s(v) for k, v in raw.items()}
        user_id = fields.pop(USER_ID, None)
        pipe = self.r.pipeline(transaction=True)
        for field in fields:
            key = self._set_of(field, user_id)
            if key is not None:
                pipe.srem(key, cid)
        pipe.delete(self._conn(cid))
        pipe.execute()

    def channels_of(self, cid: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for field in self.r.hkeys(self._conn(cid)):
            name = _s(field)
            if name != USER_ID:
                channel, product_id = name.split(" ")
                out.setdefault(channel, set()).add(product_id)
        return out

    def connections(self, channel: str, product_id: str) -> set[str]:
        return {_s(c) for c in self.r.smembers(self._sub(channel, product_id))}

    def user_connections(self, product_id: str, user_ids: Iterable[str]) -> dict[str, set[str]]:
        ids = sorted(set(user_ids))
        pipe = self.r.pipeline(transaction=False)
        for u in ids:
            pipe.smembers(self._user(product_id, u))
        return {u: {_s(c) for c in members} for u, members in zip(ids, pipe.execute(), strict=True)}

    def _user_id(self, cid: str) -> str | None:
        v = self.r.hget(self._conn(cid), USER_ID)
        return None if v is None else _s(v)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def subscriptions_store() -> Subscriptions:
    cfg = settings()
    return Subscriptions(redis_client(cfg.redis_url), keys_for(cfg).namespace)


# ---------------------------------------------------------------------- posting


def management_client(endpoint: str, connections: int = 10) -> Any:
    """The API Gateway management API of one WebSocket API stage (`https://<domain>/<stage>`).
    `connections`: its HTTP connection pool; a caller posting from more threads than botocore's
    default 10 passes its thread count, or each post beyond them opens (and drops) a new TLS
    connection."""
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name=settings().aws_region,
        config=Config(max_pool_connections=connections),
    )


def poster(client: Any) -> Post:
    """`post(connection_id, message)` through a management API client; raises Gone."""

    def post(cid: str, msg: dict[str, Any]) -> None:
        try:
            client.post_to_connection(
                ConnectionId=cid, Data=json.dumps(msg, separators=(",", ":")).encode()
            )
        except client.exceptions.GoneException as exc:
            raise Gone(cid) from exc

    return post


def callback_url(domain_name: str, stage: str) -> str:
    """`WS_CALLBACK_URL` when configured (a custom domain), else the API's own stage URL."""
    return os.environ.get("WS_CALLBACK_URL") or f"https://{domain_name}/{stage}"


# ---------------------------------------------------------------------- one client message


def snapshot_from_redis(r: redis.Redis, namespace: str, product_id: str) -> dict[str, Any]:
    """The level2 snapshot of a product as Redis holds it (sequence 0 and empty: unpublished)."""
    pipe = r.pipeline(transaction=True)
    level2.queue_read(pipe, Keys(namespace), product_id)
    seq, bids, asks = level2.from_replies(pipe.execute())
    return level2.snapshot_message(product_id, seq or 0, bids, asks)


def handle_message(
    subs: Subscriptions,
    cid: str,
    body: str,
    post: Post,
    authenticate: Callable[..., str] = fp.authenticate,
    ip: str | None = None,
) -> None:
    """Answer one client message: record the (un)subscription, then post `subscriptions` and,
    for a subscribe, the level2 snapshots, `last_match` and `ticker`. The subscription is
    recorded before the snapshot is read, so no batch falls between the two; updates the fan-out
    posts meanwhile with a sequence up to the snapshot's are dropped by clients (feed/client.py
    ignores l2updates until the snapshot, and resubscribes on a gap)."""
    try:
        req = fp.parse(json.loads(body))
        if req.type == "unsubscribe":
            subs.remove(cid, req.channels)
            post(cid, fp.subscriptions(subs.channels_of(cid)))
            return
        user_id = authenticate(req.auth, ip) if "user" in req.channels else None
    except (fp.FeedError, ValueError) as exc:
        post(cid, fp.error("Failed to subscribe", str(exc)))
        return
    subs.add(cid, req.channels, user_id)
    out = [fp.subscriptions(subs.channels_of(cid))]
    keys = Keys(subs.ns)
    for p in sorted(req.channels.get("level2", ())):
        out.append(snapshot_from_redis(subs.r, subs.ns, p))
    for p in sorted(req.channels.get("matches", ())):
        newest = subs.r.xrevrange(keys.trades(p), count=1)
        if newest:
            out.append(fp.last_match(newest[0], p))
    for p in sorted(req.channels.get("ticker", ())):
        t = fp.ticker_from_hash(subs.r.hgetall(keys.ticker(p)), p)
        if t is not None:
            out.append(t)
    for msg in out:
        post(cid, msg)


# ---------------------------------------------------------------------- Chalice handlers


def on_connect(event: WebsocketEvent) -> None:
    """Nothing to record until the client subscribes."""


def on_message(event: WebsocketEvent) -> None:
    subs = subscriptions_store()
    post = poster(management_client(callback_url(event.domain_name, event.stage)))
    try:
        identity = event.to_dict().get("requestContext", {}).get("identity", {})
        handle_message(subs, event.connection_id, event.body, post, ip=identity.get("sourceIp"))
    except Gone:
        subs.drop(event.connection_id)  # left before we answered
        logger.info("websocket gone while answering", extra={"connection": event.connection_id})


def on_disconnect(event: WebsocketEvent) -> None:
    subscriptions_store().drop(event.connection_id)
