"""Login sessions: random bearer tokens kept in Redis with a TTL.

Redis stores only a SHA-256 of each token, so a copy of Redis cannot be replayed as logins.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import int_env

DEFAULT_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user_id: str
    expires_at: float


def _key(token: str) -> str:
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


def create(user_id: str) -> Session:
    ttl = int_env("SESSION_TTL_S", DEFAULT_TTL_S)
    token = secrets.token_urlsafe(32)
    redis_client().set(_key(token), user_id, ex=ttl)
    return Session(token, user_id, time.time() + ttl)


def user_for(token: str) -> str | None:
    if not token or len(token) > 128:
        return None
    found = redis_client().get(_key(token))
    if not found:
        return None
    return found.decode() if isinstance(found, bytes) else str(found)


def destroy(token: str) -> None:
    redis_client().delete(_key(token))
