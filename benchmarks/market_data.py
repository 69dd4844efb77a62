"""Market data cost: the matcher's Redis publish per batch against the batch's settlement, and
the WebSocket feed's fan-out rate.

    python benchmarks/market_data.py                  # 300 batches of 10 orders, 100 subscribers
    python benchmarks/market_data.py --batches 1000 --subscribers 100

Uses the local services (DATABASE_URL / REDIS_URL or the defaults, started if missing) with a
database and Redis namespace of its own (dropped afterwards). Figures:

1. publish vs settle: batches of 10 orders (limit orders around one price on a book of about
   1,000 resting orders, about half crossing, a cancel every tenth), each settled in one
   Postgres transaction (`settle_batch`: load + match + write/commit) and then published
   (`Publisher.publish`: L2/L3 diffs, ticker, trades stream, candles, feed message, one
   MULTI/EXEC), in-process, no SQS. p50/p99 of each and of publish/settle per batch.
2. fan-out: 100 WebSocket clients subscribed to level2 + matches + ticker of one product on a
   local FeedServer; the Redis feed messages of (1) replayed to it as fast as it takes them;
   messages delivered per second to all subscribers together (each client counts what it got).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import psycopg

from chalicelib.core import catalog
from chalicelib.core.market_keys import keys_for
from chalicelib.messaging.order_queue import QueueMessage
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import Settings
from matcher import books
from matcher.marketdata import publisher
from matcher.settlement import Received, settle_batch
from ops import migrations, services
from tests.integration.orderflow import Flow  # places orders exactly as the API does

PID = "BTC-USD"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup() -> Settings:
    state = services.STATE_DIR
    pg, rd = services.postgres(state), services.redis(state)
    url = pg.url.rsplit("/", 1)[0] + f"/exchange_bench_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(url)
    migrations.migrate_up(url)
    migrations.seed(url)
    return Settings("local", url, rd.url, None, "us-east-1", f"bench{uuid.uuid4().hex[:8]}")


def drop(cfg: Settings) -> None:
    admin = cfg.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {cfg.database_url.rsplit('/', 1)[1]} WITH (FORCE)")
    r = redis_client(cfg.redis_url)
    keys = list(r.scan_iter(match=f"md:{cfg.queue_prefix}:*", count=1000))
    if keys:
        r.delete(*keys)


class _NoSqsFlow(Flow):
    def __init__(self, cfg: Settings) -> None:  # only the Postgres half of Flow
        self.cfg = cfg
        self.conn = psycopg.connect(cfg.database_url, autocommit=True)


def publish_vs_settle(cfg: Settings, n_batches: int, seed: int) -> list[str]:
    """Returns the feed messages published, for the fan-out run."""
    rng = random.Random(seed)
    flow = _NoSqsFlow(cfg)
    users = [flow.user(USD="100000000", BTC="100000") for _ in range(20)]
    conn = psycopg.connect(cfg.database_url, autocommit=True)
    loaded = books.load(conn, PID)
    r = redis_client(cfg.redis_url)
    pub = publisher.Publisher(keys_for(cfg), loaded.rules)
    feed = r.pubsub(ignore_subscribe_messages=True)
    feed.subscribe(keys_for(cfg).feed(PID))

    def batch(crossing: float) -> list[Received]:
        out = []
        for _ in range(10):
            side = rng.choice(("buy", "sell"))
            if rng.random() < 0.1 and loaded.live:
                oid = rng.choice(list(loaded.live))
                owner = loaded.live[oid].user_id
                out.append(Received(str(uuid.uuid4()), QueueMessage("cancel", oid, PID, owner)))
                continue
            cross = rng.random() < crossing
            off = rng.randint(0, 30) * (1 if (side == "sell") != cross else -1)
            price = f"{30000 + off}.00"
            user = rng.choice(users)
            oid = flow.place(user, PID, side, price, "0.001", send=False)
            out.append(Received(str(uuid.uuid4()), QueueMessage("order", oid, PID, user)))
        return out

    pub.full(r, conn, loaded)
    for _ in range(100):  # a resting book of about 1,000 orders first (nothing crosses)
        settle_batch(conn, loaded, batch(0.0))
    pub.full(r, conn, loaded)
    settle_ms: list[float] = []
    publish_ms: list[float] = []
    trades = 0
    for _ in range(n_batches):
        work = batch(0.5)
        t0 = time.perf_counter()
        result = settle_batch(conn, loaded, work)
        t1 = time.perf_counter()
        assert pub.publish(r, result), "a batch needed a full publish"
        t2 = time.perf_counter()
        settle_ms.append((t1 - t0) * 1000)
        publish_ms.append((t2 - t1) * 1000)
        trades += len(result.trades)
    assert pub.full_publishes == 2, "a batch fell back to a full publish"
    ratio = [p / s for p, s in zip(publish_ms, settle_ms, strict=True)]
    print(
        f"1. publish vs settle: {n_batches} batches of 10 messages, {trades} trades, "
        f"book of {len(loaded.book)} resting orders at the end"
    )
    print(
        f"   settle (load+match+write+commit)  p50 {pct(settle_ms, 0.5):6.3f} ms  "
        f"p99 {pct(settle_ms, 0.99):6.3f} ms"
    )
    print(
        f"   publish (one MULTI/EXEC)          p50 {pct(publish_ms, 0.5):6.3f} ms  "
        f"p99 {pct(publish_ms, 0.99):6.3f} ms"
    )
    print(
        f"   publish / settle per batch        p50 {pct(ratio, 0.5):6.3f}     "
        f"p99 {pct(ratio, 0.99):6.3f}   (mean publish {statistics.mean(publish_ms):.3f} ms)"
    )
    messages = []
    quiet_until = time.monotonic() + 1.0
    while time.monotonic() < quiet_until:  # None also stands for the subscribe confirmation
        m = feed.get_message(timeout=0.1)
        if m is not None:
            messages.append(m["data"].decode())
            quiet_until = time.monotonic() + 1.0
    feed.close()
    conn.close()
    flow.conn.close()
    return [m for m in messages if not json.loads(m).get("reset")]


def fan_out(cfg: Settings, messages: list[str], subscribers: int, rounds: int) -> None:
    from websockets.asyncio.client import connect

    from feed.server import FeedServer

    async def run() -> None:
        server = FeedServer(cfg, "127.0.0.1", 0)
        stop = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(server.run(stop))
        await server.ready.wait()
        url = f"ws://127.0.0.1:{server.port}"
        counts = [0] * subscribers
        conns = [await connect(url, max_size=2**24) for _ in range(subscribers)]
        sub = {
            "type": "subscribe",
            "product_ids": [PID],
            "channels": ["level2", "matches", "ticker"],
        }
        for c in conns:
            await c.send(json.dumps(sub))
            await c.recv()  # subscriptions
            await c.recv()  # snapshot

        async def count(i: int, c: Any) -> None:
            async for _ in c:
                counts[i] += 1

        readers = [asyncio.create_task(count(i, c)) for i, c in enumerate(conns)]
        # Replay the batch messages into the server's feed handling, renumbered so that each
        # round continues the sequence (as one long run of the matcher would).
        parsed = [json.loads(m) for m in messages]
        follower = server.books[PID]
        t0 = time.perf_counter()
        for _ in range(rounds):
            base = follower.seq or 0
            first = parsed[0]["prev_sequence"]
            for m in parsed:
                m2 = dict(
                    m,
                    sequence=m["sequence"] - first + base,
                    prev_sequence=m["prev_sequence"] - first + base,
                )
                await server.on_feed(PID, m2)
            await asyncio.sleep(0)
        sent = server.stats["sent"]
        while sum(counts) < sent:  # until every client has read what was sent to it
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        per_batch = sent / (rounds * len(parsed))
        print(
            f"2. fan-out: {subscribers} WebSocket subscribers (level2 + matches + ticker), "
            f"{rounds * len(parsed)} batches replayed, {sent:,} messages delivered"
        )
        print(
            f"   {sent / elapsed:,.0f} messages/s to all subscribers together "
            f"({rounds * len(parsed) / elapsed:,.0f} batches/s, "
            f"{per_batch / subscribers:.2f} messages per batch per subscriber)"
        )
        for t in readers:
            t.cancel()
        for c in conns:
            await c.close()
        stop.set_result(None)
        await task

    asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    from matcher.engine import BUILD

    print(f"engine build: {BUILD}; products: {', '.join(catalog.PRODUCTS)}")
    cfg = setup()
    try:
        messages = publish_vs_settle(cfg, args.batches, seed=1)
        fan_out(cfg, messages, args.subscribers, args.rounds)
    finally:
        drop(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
