"""The WebSocket feed's protocol (Coinbase Exchange's message shapes), with no transport: the
local server (feed/server.py) and the API Gateway handlers (chalicelib/marketdata/ws.py)
both speak it.

Client -> server: `{"type": "subscribe"|"unsubscribe", "product_ids": [...], "channels": ["level2",
{"name": "ticker", "product_ids": [...]}, ...]}`; the `user` channel also needs credentials in
the same message: `"token"` (a session from POST /auth/login) or Coinbase's signed fields `key`,
`passphrase`, `timestamp`, `signature` = base64(HMAC-SHA256(secret, timestamp + "GET" +
"/users/self/verify")).

Server -> client: `subscriptions`, `error`; `snapshot` then `l2update` (level2), `ticker`,
`last_match` then `match` (matches), and for `user` the full-channel messages of the
subscriber's own orders (`received`, `open`, `match`, `change`, `done`).

Level 2 sequencing (ours; Coinbase's l2update has none): a `snapshot` carries `sequence`, each
`l2update` carries `sequence` and `prev_sequence`, and `prev_sequence` always equals the
`sequence` of the level2 message before it for that product. A client whose last sequence
differs from an update's `prev_sequence` has missed one: it must resubscribe (a new snapshot
follows). The sequence is the product's engine sequence at which the level2 book last changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from chalicelib.core import level2
from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.errors import RateLimited
from chalicelib.identity import guard, sessions, signing

CHANNELS = ("level2", "level2_batch", "ticker", "matches", "user")
VERIFY_PATH = "/users/self/verify"


class FeedError(Exception):
    """A client message we refuse; `reason` goes into the error message."""


def error(message: str, reason: str) -> dict[str, Any]:
    return {"type": "error", "message": message, "reason": reason}


@dataclass
class Request:
    type: str  # subscribe | unsubscribe
    channels: dict[str, set[str]]  # channel -> product ids
    auth: dict[str, str] = field(default_factory=dict)


def parse(message: Any) -> Request:
    """A client's subscribe/unsubscribe message, validated (raises FeedError)."""
    if not isinstance(message, dict):
        raise FeedError("message must be a JSON object")
    kind = message.get("type")
    if kind not in ("subscribe", "unsubscribe"):
        raise FeedError("type must be subscribe or unsubscribe")
    default = message.get("product_ids", [])
    if not isinstance(default, list) or not all(isinstance(p, str) for p in default):
        raise FeedError("product_ids must be a list of product ids")
    raw_channels = message.get("channels")
    if not isinstance(raw_channels, list) or not raw_channels:
        raise FeedError("channels must be a non-empty list")
    channels: dict[str, set[str]] = {}
    for c in raw_channels:
        if isinstance(c, str):
            name, products = c, default
        elif isinstance(c, dict) and isinstance(c.get("name"), str):
            name, products = c["name"], c.get("product_ids", default)
            if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
                raise FeedError(f"{name}: product_ids must be a list of product ids")
        else:
            raise FeedError("each channel is a name or {name, product_ids}")
        if name not in CHANNELS:
            raise FeedError(f"{name} is not a valid channel")
        if name == "level2_batch":
            name = "level2"
        if not products:
            raise FeedError(f"{name}: no product_ids")
        unknown = [p for p in products if p not in PRODUCTS]
        if unknown:
            raise FeedError(f"{', '.join(unknown)} is not a valid product")
        channels.setdefault(name, set()).update(products)
    auth = {
        k: message[k]
        for k in ("token", "key", "passphrase", "timestamp", "signature")
        if isinstance(message.get(k), str)
    }
    return Request(kind, channels, auth)


def authenticate(auth: dict[str, str], ip: str | None = None) -> str:
    """The user id the credentials of a subscribe message prove (raises FeedError).
    Blocking (Redis, Postgres): async callers run it in a thread.

    The rules of the REST API's authentication apply (`identity.guard`): the failure budgets of
    the client's `ip` (when the transport gives it) and of the credential are checked before any
    lookup, a failure is counted against both, and unknown API keys are remembered. A spent
    budget or an unreachable Redis (fail closed, as for the REST API) is an error message."""
    if "token" in auth:
        subject: str | None = guard.session_subject(auth["token"])
    elif all(k in auth for k in ("key", "passphrase", "timestamp", "signature")):
        subject = guard.key_subject(auth["key"]) if len(auth["key"]) <= 64 else None
    else:
        raise FeedError("the user channel needs a token, or key, passphrase, timestamp, signature")
    try:
        guard.admit(ip, subject)
        try:
            user_id, permissions = _verify(auth)
        except FeedError:
            if subject is not None:
                guard.failed(ip, subject)
            raise
    except RateLimited as exc:
        raise FeedError(exc.message) from exc
    except redis.RedisError as exc:
        raise FeedError("Service unavailable, try again later") from exc
    if "view" not in permissions:
        raise FeedError("Forbidden")
    return user_id


def _verify(auth: dict[str, str]) -> tuple[str, frozenset[str]]:
    """The user and permissions the credentials prove, or FeedError."""
    if "token" in auth:
        user_id = sessions.user_for(auth["token"])
        if user_id is None:
            raise FeedError("Unauthorized")
        return user_id, frozenset({"view"})
    if len(auth["key"]) > 64:
        raise FeedError("Invalid API Key")
    found = guard.load_key(auth["key"], auth["passphrase"])
    if isinstance(found, str):
        raise FeedError(found)
    if not signing.timestamp_ok(auth["timestamp"], time.time()):
        raise FeedError("invalid timestamp")
    if not signing.matches(
        found.secret, auth["signature"], auth["timestamp"], "GET", VERIFY_PATH, ""
    ):
        raise FeedError("invalid signature")
    return found.user_id, found.permissions


def subscriptions(channels: dict[str, set[str]]) -> dict[str, Any]:
    return {
        "type": "subscriptions",
        "channels": [
            {"name": name, "product_ids": sorted(products)}
            for name, products in sorted(channels.items())
            if products
        ],
    }


class L2Follower:
    """One product's level-2 book as a feed server keeps it, from the matcher's feed messages.

    `apply` returns the l2update to send, None when the message changed no level, or raises
    `Resync` when the message does not follow the last one (missed, or a matcher reset): the
    caller then loads a snapshot from Redis and calls `reset`.
    """

    def __init__(self, product_id: str) -> None:
        self.product_id = product_id
        self.book: dict[str, dict[str, str]] = {"buy": {}, "sell": {}}
        self.seq: int | None = None  # the matcher's sequence this book is at
        self.sent: int = 0  # the sequence of the last level2 message sent for this product

    def reset(self, sequence: int, bids: list[list[Any]], asks: list[list[Any]]) -> None:
        self.book = {"buy": {b[0]: b[1] for b in bids}, "sell": {a[0]: a[1] for a in asks}}
        self.seq = sequence
        self.sent = sequence

    def snapshot(self) -> dict[str, Any]:
        return level2.snapshot_message(
            self.product_id,
            self.sent,
            level2.best_first(list(self.book["buy"].items()), "buy"),
            level2.best_first(list(self.book["sell"].items()), "sell"),
        )

    def apply(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        if self.seq is not None and msg["sequence"] <= self.seq and not msg.get("reset"):
            return None  # already in the snapshot
        if msg.get("reset") or msg.get("prev_sequence") != self.seq:
            raise Resync(self.product_id)
        self.seq = msg["sequence"]
        changes = msg["l2"]
        if not changes:
            return None
        for side, price, size in changes:
            if size == "0":
                self.book[side].pop(price, None)
            else:
                self.book[side][price] = size
        update = {
            "type": "l2update",
            "product_id": self.product_id,
            "time": msg["time"],
            "changes": changes,
            "sequence": msg["sequence"],
            "prev_sequence": self.sent,
        }
        self.sent = msg["sequence"]
        return update


class Resync(Exception):
    """A feed message does not follow the last one: reload the snapshot."""


def last_match(stream_entry: Any, product_id: str) -> dict[str, Any]:
    """Coinbase's `last_match` from the newest entry of the trades stream."""
    _id, raw = stream_entry
    f = {_text(k): _text(v) for k, v in raw.items()}
    return {
        "type": "last_match",
        "trade_id": int(f["trade_id"]),
        "sequence": int(f["seq"]),
        "maker_order_id": f["maker_order_id"],
        "taker_order_id": f["taker_order_id"],
        "time": f["time"],
        "product_id": product_id,
        "size": f["size"],
        "price": f["price"],
        "side": f["side"],
    }


def ticker_from_hash(raw: dict[Any, Any], product_id: str) -> dict[str, Any] | None:
    """Coinbase's `ticker` message from the ticker hash (sent on subscribe); None: no trade."""
    f = {_text(k): _text(v) for k, v in raw.items()}
    if not f.get("trade_id"):
        return None
    return {
        "type": "ticker",
        "sequence": int(f.get("sequence") or 0),
        "product_id": product_id,
        "price": f["price"],
        "open_24h": f.get("open", ""),
        "volume_24h": f.get("volume", ""),
        "low_24h": f.get("low", ""),
        "high_24h": f.get("high", ""),
        "best_bid": f.get("bid", ""),
        "best_bid_size": f.get("bid_size", ""),
        "best_ask": f.get("ask", ""),
        "best_ask_size": f.get("ask_size", ""),
        "side": "buy" if f.get("side") == "sell" else "sell",  # the taker's
        "time": f.get("time", ""),
        "trade_id": int(f["trade_id"]),
        "last_size": f.get("size", ""),
    }


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
