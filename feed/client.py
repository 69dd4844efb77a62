"""A small client of the feed: keeps level-2 books from snapshot + l2update, notices a gap (an
update whose prev_sequence is not the last sequence it applied) and resubscribes to get a fresh
snapshot, as any client of the feed should.

    async with FeedClient.connect("ws://127.0.0.1:8001") as feed:
        await feed.subscribe(["level2", "matches"], ["BTC-USD"])
        async for msg in feed:
            print(msg["type"], feed.books.get("BTC-USD"))
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class Book:
    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.sequence: int = snapshot["sequence"]
        self.bids = {p: s for p, s in snapshot["bids"]}
        self.asks = {p: s for p, s in snapshot["asks"]}

    def apply(self, update: dict[str, Any]) -> bool:
        """Apply an l2update; False (and nothing applied) if it does not follow the last."""
        if update["prev_sequence"] != self.sequence:
            return False
        for side, price, size in update["changes"]:
            levels = self.bids if side == "buy" else self.asks
            if size == "0":
                levels.pop(price, None)
            else:
                levels[price] = size
        self.sequence = update["sequence"]
        return True


class FeedClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.books: dict[str, Book] = {}
        self.gaps = 0
        self._awaiting: set[str] = set()  # products resubscribed, until their snapshot comes
        self._subscribe: dict[str, Any] = {}

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[FeedClient]:
        async with connect(url, max_size=2**24) as ws:
            yield cls(ws)

    async def subscribe(self, channels: list[Any], product_ids: list[str], **auth: str) -> None:
        msg = {"type": "subscribe", "product_ids": product_ids, "channels": channels, **auth}
        self._subscribe = msg
        await self.ws.send(json.dumps(msg))

    async def recv(self) -> dict[str, Any]:
        msg: dict[str, Any] = json.loads(await self.ws.recv())
        kind = msg.get("type")
        if kind == "snapshot":
            self.books[msg["product_id"]] = Book(msg)
            self._awaiting.discard(msg["product_id"])
        elif kind == "l2update" and msg["product_id"] not in self._awaiting:
            book = self.books.get(msg["product_id"])
            if book is None or not book.apply(msg):
                await self.resync(msg["product_id"])
        return msg

    async def resync(self, product_id: str) -> None:
        """A gap: drop the book and ask for level2 again (a new snapshot follows)."""
        self.gaps += 1
        self.books.pop(product_id, None)
        self._awaiting.add(product_id)  # updates already on their way are moot
        await self.ws.send(
            json.dumps({"type": "unsubscribe", "product_ids": [product_id], "channels": ["level2"]})
        )
        await self.ws.send(
            json.dumps({"type": "subscribe", "product_ids": [product_id], "channels": ["level2"]})
        )

    def __aiter__(self) -> FeedClient:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.recv()
