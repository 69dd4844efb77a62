"""Coinbase Exchange request signing (CB-ACCESS-* headers), verified exactly as Coinbase does.

signature = base64(HMAC-SHA256(base64decode(secret), timestamp + METHOD + path_with_query + body))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math

MAX_SKEW_S = 30


def sign(secret_b64: str, timestamp: str, method: str, path: str, body: str) -> str:
    """What a client sends; used by our tests and tools the way client libraries do it."""
    return signature(base64.b64decode(secret_b64), timestamp, method, path, body)


def signature(secret: bytes, timestamp: str, method: str, path: str, body: str) -> str:
    message = f"{timestamp}{method.upper()}{path}{body}".encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def timestamp_ok(timestamp: str, now: float) -> bool:
    try:
        value = float(timestamp)
    except ValueError:
        return False
    return math.isfinite(value) and abs(value - now) <= MAX_SKEW_S


def matches(
    secret: bytes, provided: str, timestamp: str, method: str, path: str, body: str
) -> bool:
    return hmac.compare_digest(signature(secret, timestamp, method, path, body), provided)
