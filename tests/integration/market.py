"""Helpers for the market data tests: random order flow, the engine's book as the wire shows it,
a REST client on the matcher's database, and the feed messages a test collects."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.core import wire
from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.market_keys import keys_for
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import Settings
from matcher import books
from tests.conftest import service_env
from tests.integration.orderflow import Flow

PID = "BTC-USD"


def random_orders(flow: Flow, rng: random.Random, n: int, users: list[str]) -> list[str]:
    """n orders (limits around 30000, some IOC/post-only/market) and cancels of earlier ones."""
    placed: list[str] = []
    for _ in range(n):
        user = rng.choice(users)
        roll = rng.random()
        if roll < 0.12 and placed:
            flow.cancel(rng.choice(placed), PID)
            continue
        side = rng.choice(("buy", "sell"))
        size = f"0.{rng.randint(1, 50):02d}"
        if roll < 0.2:
            if side == "buy":
                placed.append(flow.place(user, PID, side, funds=f"{rng.randint(50, 900)}.00"))
            else:
                placed.append(flow.place(user, PID, side, size=size))
            continue
        # Buys mostly below 30000, sells above, with an overlap so that trades happen.
        base = 29990 if side == "buy" else 30010
        price = f"{base + rng.randint(-15, 15)}.{rng.choice(('00', '50'))}"
        tif = rng.choice(("GTC", "GTC", "GTC", "IOC"))
        placed.append(
            flow.place(user, PID, side, price, size, tif=tif, post_only=rng.random() < 0.05)
        )
    return placed


def engine_book(flow: Flow, product_id: str = PID) -> books.LoadedBook:
    """The book the engine rebuilds from Postgres: the truth to compare market data with."""
    return books.load(flow.conn, product_id)


def engine_l2(loaded: books.LoadedBook) -> dict[str, list[list[Any]]]:
    p = loaded.rules.product
    r = loaded.rules
    return {
        side: [
            [wire.price(pr * r.tick, p), wire.size(sz * r.lot, p), n]
            for pr, sz, n in loaded.book.depth(side)
        ]
        for side in ("buy", "sell")
    }


def engine_l3(loaded: books.LoadedBook) -> dict[str, list[list[Any]]]:
    p = loaded.rules.product
    r = loaded.rules
    return {
        side: [
            [wire.price(pr * r.tick, p), wire.size(sz * r.lot, p), str(oid)]
            for pr, sz, oid in loaded.book.orders(side)
        ]
        for side in ("buy", "sell")
    }


@contextmanager
def rest_client(cfg: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Chalice's test client on the matcher's database and Redis namespace."""
    from chalice.test import Client

    from app import app

    env = {
        "STAGE": "test",
        **service_env(
            cfg.database_url, cfg.redis_url, cfg.aws_endpoint_url or "", cfg.queue_prefix
        ),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with Client(app, stage_name="test") as client:
        yield client


def get(client: Any, path: str) -> tuple[int, Any, dict[str, str]]:
    r = client.http.get(path)
    return r.status_code, json.loads(r.body), dict(r.headers)


class FeedTap:
    """Every message on a product's feed channel since it was opened."""

    def __init__(self, cfg: Settings, product_id: str = PID) -> None:
        self.pubsub = redis_client(cfg.redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(keys_for(cfg).feed(product_id))
        self.messages: list[dict[str, Any]] = []

    def pump(self, until: float = 0.0) -> list[dict[str, Any]]:
        """Read what has arrived (waiting up to `until` seconds for the first)."""
        deadline = time.monotonic() + until
        while True:
            m = self.pubsub.get_message(timeout=0.05)
            if m is not None:
                self.messages.append(json.loads(m["data"]))
                continue
            if time.monotonic() >= deadline:
                return self.messages

    def wait_for(self, pred: Any, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            self.pump(0.05)
            for m in self.messages[seen:]:
                if pred(m):
                    return m
            seen = len(self.messages)
        raise TimeoutError("no such feed message")

    def close(self) -> None:
        self.pubsub.close()


def funded_users(flow: Flow, n: int) -> list[str]:
    return [flow.user(USD="10000000", BTC="1000") for _ in range(n)]


assert PID in PRODUCTS


def set_env(cfg: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point chalicelib's settings() (sessions, API keys, db pool) at this test's services."""
    env = {
        "STAGE": "test",
        **service_env(
            cfg.database_url, cfg.redis_url, cfg.aws_endpoint_url or "", cfg.queue_prefix
        ),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)


@contextmanager
def feed_server(cfg: Settings) -> Iterator[Any]:
    """A FeedServer on a free port, in a thread with its own event loop, for the block."""
    import asyncio
    import threading

    from feed.server import FeedServer

    loop = asyncio.new_event_loop()
    server = FeedServer(cfg, "127.0.0.1", 0)
    stop = loop.create_future()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.run(stop),))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.ready.is_set():
            assert time.monotonic() < deadline and thread.is_alive(), "the feed did not start"
            time.sleep(0.02)
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
        loop.close()
