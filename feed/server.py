"""`exchange feed`: a WebSocket server of the market data feed
(chalicelib/marketdata/feed_protocol.py), fed by the matcher's Redis pub/sub messages
(market_keys: `feed`). Any number can run side by side: each follows Redis on its own.

One asyncio task reads Redis; it keeps each product's level-2 book (feed_protocol.L2Follower),
turns each batch message into the Coinbase messages of each channel, encodes each once, and
pushes it to every subscribed connection with `websockets.broadcast` (no per-client awaiting;
a client that cannot keep up piles up in its own buffer until the ping timeout drops it).
Connection handlers only read in-memory state between awaits, so a new subscriber's snapshot and
the updates after it never interleave wrongly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from chalicelib.core import level2
from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.market_keys import Keys, keys_for
from chalicelib.marketdata import feed_protocol as fp
from chalicelib.platform.config import Settings
from chalicelib.platform.logs import logger


def _dumps(msg: Any) -> str:
    return json.dumps(msg, separators=(",", ":"))


@dataclass
class Client:
    ws: ServerConnection
    channels: dict[str, set[str]] = field(default_factory=dict)
    user_id: str | None = None


class FeedServer:
    def __init__(self, cfg: Settings, host: str = "127.0.0.1", port: int = 8001) -> None:
        self.cfg = cfg
        self.keys: Keys = keys_for(cfg)
        self.host, self.port = host, port
        self.redis = aioredis.Redis.from_url(cfg.redis_url)
        self.books = {p: fp.L2Follower(p) for p in PRODUCTS}
        self.clients: dict[ServerConnection, Client] = {}
        self.ready = asyncio.Event()
        self.stats = {"batches": 0, "sent": 0, "resyncs": 0}

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Future[Any] | None = None) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(self.keys.feed_pattern)  # first, so nothing is missed after
        for p in PRODUCTS:
            await self._resync(p, announce=False)
        async with serve(self._handler, self.host, self.port, ping_interval=10) as server:
            self.port = server.sockets[0].getsockname()[1] if self.port == 0 else self.port
            self.ready.set()
            reader = asyncio.create_task(self._follow(pubsub))
            try:
                await (stop if stop is not None else asyncio.get_running_loop().create_future())
            finally:
                reader.cancel()
                await pubsub.aclose()
                await self.redis.aclose()

    async def _follow(self, pubsub: Any) -> None:
        while True:
            m = await pubsub.get_message(timeout=1.0)
            if m is None:
                continue
            try:
                channel = m["channel"].decode()
                await self.on_feed(Keys.product_of_channel(channel), json.loads(m["data"]))
            except Exception:
                logger.exception("feed message not handled")

    # ------------------------------------------------------------------ Redis -> clients

    async def on_feed(self, product_id: str, msg: dict[str, Any]) -> None:
        follower = self.books.get(product_id)
        if follower is None:
            return
        self.stats["batches"] += 1
        try:
            update = follower.apply(msg)
        except fp.Resync:
            await self._resync(product_id)
            update = None
        if update is not None:
            self._send(self._subscribers("level2", product_id), update)
        if msg.get("reset"):
            return
        for match in msg.get("matches", ()):
            self._send(self._subscribers("matches", product_id), match)
        if msg.get("ticker"):
            self._send(self._subscribers("ticker", product_id), msg["ticker"])
        if msg.get("user"):
            by_user: dict[str, list[ServerConnection]] = {}
            for c in self.clients.values():
                if c.user_id is not None and product_id in c.channels.get("user", ()):
                    by_user.setdefault(c.user_id, []).append(c.ws)
            for event in msg["user"]:
                targets = by_user.get(event["user_id"])
                if targets:
                    self._send(targets, event)

    async def _resync(self, product_id: str, announce: bool = True) -> None:
        """Load the product's level-2 book from Redis and send it to its subscribers."""
        pipe = self.redis.pipeline(transaction=True)
        level2.queue_read(pipe, self.keys, product_id)
        seq, bids, asks = level2.from_replies(await pipe.execute())
        follower = self.books[product_id]
        if seq is None:
            follower.reset(0, [], [])
            follower.seq = None  # nothing published yet: the next message resyncs again
        else:
            follower.reset(seq, bids, asks)
        self.stats["resyncs"] += 1
        if announce:
            self._send(self._subscribers("level2", product_id), follower.snapshot())

    def _subscribers(self, channel: str, product_id: str) -> list[ServerConnection]:
        return [c.ws for c in self.clients.values() if product_id in c.channels.get(channel, ())]

    def _send(self, targets: Iterable[ServerConnection], msg: dict[str, Any]) -> None:
        targets = list(targets)
        if targets:
            broadcast(targets, _dumps(msg))
            self.stats["sent"] += len(targets)

    # ------------------------------------------------------------------ one connection

    async def _handler(self, ws: ServerConnection) -> None:
        client = Client(ws)
        self.clients[ws] = client
        try:
            async for raw in ws:
                try:
                    req = fp.parse(json.loads(raw))
                    await self._request(client, req)
                except (fp.FeedError, ValueError) as exc:
                    await ws.send(_dumps(fp.error("Failed to subscribe", str(exc))))
        except ConnectionClosed:
            pass  # the client went away mid-reply: nothing to tell it
        finally:
            self.clients.pop(ws, None)

    async def _request(self, client: Client, req: fp.Request) -> None:
        if req.type == "unsubscribe":
            for name, products in req.channels.items():
                client.channels.get(name, set()).difference_update(products)
            await client.ws.send(_dumps(fp.subscriptions(client.channels)))
            return
        if "user" in req.channels:
            peer = client.ws.remote_address
            ip = str(peer[0]) if peer else None
            client.user_id = await asyncio.to_thread(fp.authenticate, req.auth, ip)
        extras: list[dict[str, Any]] = []
        for p in req.channels.get("matches", ()):
            newest = await self.redis.xrevrange(self.keys.trades(p), count=1)
            if newest:
                extras.append(fp.last_match(newest[0], p))
        for p in req.channels.get("ticker", ()):
            t = fp.ticker_from_hash(await self.redis.hgetall(self.keys.ticker(p)), p)
            if t is not None:
                extras.append(t)
        # From here to the end no await: the snapshots and the subscription take effect
        # together, before the Redis reader can send this client anything newer.
        for name, products in req.channels.items():
            client.channels.setdefault(name, set()).update(products)
        out = [fp.subscriptions(client.channels)]
        out += [self.books[p].snapshot() for p in sorted(req.channels.get("level2", ()))]
        out += extras
        for msg in out:
            broadcast([client.ws], _dumps(msg))


def main(cfg: Settings, host: str, port: int) -> int:
    server = FeedServer(cfg, host, port)

    async def go() -> None:
        task = asyncio.create_task(server.run())
        await server.ready.wait()
        print(f"feed      ws://{host}:{server.port}", flush=True)
        await task

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0
