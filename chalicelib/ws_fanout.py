"""The fan-out of the API Gateway WebSocket feed: each matcher batch message (market_keys:
`feed`) posted to the connections chalicelib/ws.py recorded as subscribed.

Where it runs in AWS: `exchange ws-fanout`, a small loop beside the matcher (a second container
in the matcher's ECS task), subscribed to the Redis feed channel. It is not a Lambda because Redis
pub/sub needs one long-lived subscriber, and it is not inside the matcher's loop so that slow
posts never delay settlement. It needs `WS_CALLBACK_URL` (`https://<api id>.execute-api.
<region>.amazonaws.com/<stage>` or the custom domain) and execute-api:ManageConnections.

Level2 updates: one `l2update` per batch message, with the matcher's `sequence` and
`prev_sequence` (empty `changes` when the batch moved no level), so each update's
`prev_sequence` is the previous level2 message's `sequence` for every client, whichever batch its
Redis snapshot was read at. A matcher reset is followed by a fresh snapshot from Redis.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.catalog import PRODUCTS
from chalicelib.logs import logger
from chalicelib.market_keys import Keys
from chalicelib.ws import Gone, Post, Subscriptions, snapshot_from_redis


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


def fan_out(subs: Subscriptions, post: Post, product_id: str, msg: dict[str, Any]) -> int:
    """Post one batch message's Coinbase messages to their subscribers; connections API
    Gateway calls gone are forgotten (and get nothing more). Returns the posts made."""
    if product_id not in PRODUCTS:
        return 0
    gone: set[str] = set()
    posted = 0
    for targets, out in messages_for(subs, product_id, msg):
        for cid in sorted(targets - gone):
            try:
                post(cid, out)
                posted += 1
            except Gone:
                gone.add(cid)
                subs.drop(cid)
    return posted


def run(subs: Subscriptions, post: Post, keys: Keys, stop: Any = None) -> None:
    """Follow the Redis feed channel and fan out each message until `stop()` is true."""
    pubsub = subs.r.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(keys.feed_pattern)
    try:
        while stop is None or not stop():
            m = pubsub.get_message(timeout=1.0)
            if m is None:
                continue
            try:
                channel = m["channel"].decode()
                fan_out(subs, post, Keys.product_of_channel(channel), json.loads(m["data"]))
            except Exception:
                logger.exception("feed message not fanned out")
    finally:
        pubsub.close()
