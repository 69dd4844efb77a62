"""Token-bucket rate limits in Redis, one bucket per API key, session or client IP.

Defaults follow Coinbase Exchange: public 10 requests/s with bursts to 15, private 15/s with
bursts to 30. Override with RATE_LIMIT_PUBLIC / RATE_LIMIT_PRIVATE as "rate/burst".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import redis

from chalicelib.core.errors import RateLimited
from chalicelib.platform.cache import redis_client
from chalicelib.platform.logs import logger

# Atomic refill-and-take, timed by Redis's clock so that every Lambda shares one notion of now.
_SCRIPT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or t
tokens = math.min(burst, tokens + math.max(0, t - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(t))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float
    burst: int
    message: str


def _limit(env: str, default: str, message: str) -> Limit:
    rate, _, burst = (os.environ.get(env) or default).partition("/")
    return Limit(float(rate), int(burst), message)


def public() -> Limit:
    return _limit("RATE_LIMIT_PUBLIC", "10/15", "Public rate limit exceeded")


def private() -> Limit:
    return _limit("RATE_LIMIT_PRIVATE", "15/30", "Private rate limit exceeded")


def take(bucket: str, limit: Limit) -> None:
    """Take one token from `bucket` or raise RateLimited with the seconds to wait."""
    client = redis_client()
    try:
        wait = float(client.eval(_SCRIPT, 1, f"rl:{bucket}", limit.rate, limit.burst))
    except redis.RedisError:
        # Limits protect the service; an outage of the limiter must not take the API down too.
        logger.warning("rate limiter unavailable; request allowed", extra={"bucket": bucket})
        return
    if wait > 0:
        raise RateLimited(limit.message, math.ceil(wait))
