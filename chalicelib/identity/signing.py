"""Coinbase Exchange request signing (CB-ACCESS-* headers), verified exactly as Coinbase does.

signature = base64(HMAC-SHA256(base64decode(secret), timestamp + METHOD + path_with_query + body))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math

MAX_SKEW_S = 30
MAX_TIMESTAMP_CHARS = 32  # unix seconds with any sensible number of decimals


def sign(secret_b64: str, timestamp: str, method: str, path: str, body: str) -> str:
    """What a client sends; used by our tests and tools the way client libraries do it."""
    return signature(base64.b64decode(secret_b64), timestamp, method, path, body)


def signature(secret: bytes, timestamp: str, method: str, path: str, body: str) -> str:
    message = f"{timestamp}{method.upper()}{path}{body}".encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def timestamp_ok(timestamp: str, now: float) -> bool:
    """Unix seconds in ASCII within MAX_SKEW_S of `now` (float() alone also reads other
    scripts' digits)."""
    if len(timestamp) > MAX_TIMESTAMP_CHARS or not timestamp.isascii():
        return False
    try:
        value = float(timestamp)
    except ValueError:
        return False
    return math.isfinite(value) and abs(value - now) <= MAX_SKEW_S


def matches(
    secret: bytes, provided: str, timestamp: str, method: str, path: str, body: str
) -> bool:
    """Whether `provided` is the request's signature. A signature is base64, so ASCII:
    hmac.compare_digest refuses to compare non-ASCII str at all."""
    if not provided.isascii():
        return False
    return hmac.compare_digest(signature(secret, timestamp, method, path, body), provided)
