"""The fan-out of the API Gateway WebSocket feed: each matcher batch message (market_keys:
`feed`) posted to the connections chalicelib/marketdata/ws.py recorded as subscribed.

Where it runs in AWS: `exchange ws-fanout`, a small loop beside the matcher (a second container
in the matcher's ECS task), subscribed to the Redis feed channel. It is not a Lambda because Redis
pub/sub needs one long-lived subscriber, and it is not inside the matcher's loop so that slow
posts never delay settlement. It needs `WS_CALLBACK_URL` (`https://<api id>.execute-api.
<region>.amazonaws.com/<stage>` or the custom domain) and execute-api:ManageConnections.

Level2 updates: one `l2update` per batch message, with the matcher's `sequence` and
`prev_sequence` (empty `changes` when the batch moved no level), so each update's
`prev_sequence` is the previous level2 message's `sequence` for every client, whichever batch its
Redis snapshot was read at. A matcher reset is followed by a fresh snapshot from Redis.

Posting: each PostToConnection is an HTTPS round trip to API Gateway, so a batch message's posts
go out on a thread pool (`WS_FANOUT_THREADS`, default 16), one task per connection; see `fan_out`
for how that keeps each connection's messages in order.
"""

from __future__ import annotations

import json
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.market_keys import Keys
from chalicelib.marketdata.ws import Gone, Post, Subscriptions, snapshot_from_redis
from chalicelib.platform.logs import logger

DEFAULT_THREADS = 16


def messages_for(
    subs: Subscriptions, product_id: str, msg: dict[str, Any]
) -> list[tuple[set[str], dict[str, Any]]]:
    """(connection ids, message) pairs, in the order to post them."""
    level2 = subs.connections("level2", product_id)
    if msg.get("reset"):
        return [(level2, snapshot_from_redis(subs.r, subs.ns, product_id))] if level2 else []
    out: list[tuple[set[str], dict[str, Any]]] = []
    if level2:
        update = {
            "type": "l2update",
            "product_id": product_id,
            "time": msg["time"],
            "changes": msg.get("l2", []),
            "sequence": msg["sequence"],
            "prev_sequence": msg["prev_sequence"],
        }
        out.append((level2, update))
    if msg.get("matches"):
        matches = subs.connections("matches", product_id)
        out += [(matches, m) for m in msg["matches"]] if matches else []
    if msg.get("ticker"):
        ticker = subs.connections("ticker", product_id)
        if ticker:
            out.append((ticker, msg["ticker"]))
    events = msg.get("user") or []
    if events:
        by_user = subs.user_connections(product_id, (e["user_id"] for e in events))
        out += [(by_user[e["user_id"]], e) for e in events if by_user.get(e["user_id"])]
    return out


def fan_out(
    subs: Subscriptions,
    post: Post,
    product_id: str,
    msg: dict[str, Any],
    pool: Executor | None = None,
) -> int:
    """Post one batch message's Coinbase messages to their subscribers. Returns the posts made.

    One task per connection posts that connection's messages in the order `messages_for` gives
    them, on `pool` (in this thread without one), and the call returns only when every task is
    done. Connections proceed side by side, but a connection's messages are never posted by two
    threads at once: within the batch message they go out in order, and the next batch message
    (whose `l2update` must follow this one's in the client's `prev_sequence` chain) cannot start
    before this one is finished for every connection. The cost is that a batch message takes as
    long as its slowest connection.

    A connection API Gateway calls gone gets nothing more and is forgotten (here, once the tasks
    are done, so Redis is used from this thread only). Any other error is logged and that
    connection gets nothing more of this batch message: the client has lost a message already
    (on a level2 gap feed/client.py resubscribes), and boto3 has retried what was retryable, so
    more posts would most likely fail slowly too and hold up the batch for everyone else.
    """
    if product_id not in PRODUCTS:
        return 0
    per_connection: dict[str, list[dict[str, Any]]] = {}
    for targets, out in messages_for(subs, product_id, msg):
        for cid in targets:
            per_connection.setdefault(cid, []).append(out)
    work = sorted(per_connection.items())
    if pool is None:
        results = [_post_in_order(post, cid, msgs) for cid, msgs in work]
    else:
        futures = [pool.submit(_post_in_order, post, cid, msgs) for cid, msgs in work]
        results = [f.result() for f in futures]  # waits for all: the ordering argument above
    posted = 0
    for (cid, _msgs), (n, gone) in zip(work, results, strict=True):
        posted += n
        if gone:
            subs.drop(cid)
    return posted


def _post_in_order(post: Post, cid: str, msgs: list[dict[str, Any]]) -> tuple[int, bool]:
    """Post `msgs` to one connection in order, stopping at the first failure.
    Returns (posts made, whether the connection is gone)."""
    for i, out in enumerate(msgs):
        try:
            post(cid, out)
        except Gone:
            return i, True
        except Exception:
            logger.exception(
                "websocket post failed; rest of the batch skipped for this connection",
                extra={"connection": cid, "skipped": len(msgs) - i - 1},
            )
            return i, False
    return len(msgs), False


def run(
    subs: Subscriptions,
    post: Post,
    keys: Keys,
    stop: Any = None,
    threads: int = DEFAULT_THREADS,
) -> None:
    """Follow the Redis feed channel and fan out each message, posting on `threads` threads,
    until `stop()` is true. `post` must be safe to call from several threads (a boto3 client
    is)."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ws-fanout")
    pubsub = subs.r.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(keys.feed_pattern)
    try:
        while stop is None or not stop():
            m = pubsub.get_message(timeout=1.0)
            if m is None:
                continue
            try:
                channel = m["channel"].decode()
                product_id = Keys.product_of_channel(channel)
                fan_out(subs, post, product_id, json.loads(m["data"]), pool)
            except Exception:
                logger.exception("feed message not fanned out")
    finally:
        pubsub.close()
        pool.shutdown()
