"""Request rate limits: per client IP before anything else, per user once authenticated.

Defaults follow Coinbase Exchange: public 10 requests/s with bursts to 15 per client IP; private
15/s with bursts to 30 per user (all of a user's API keys and sessions share one bucket).
Requests that carry credentials take their per-IP token from a bucket of their own, before the
credentials are looked up (`RATE_LIMIT_AUTH_IP`, by default twice the private limit: room for one
user's full private rate and another caller behind the same address), so that the public limit
does not cap a user's private one. Override with RATE_LIMIT_PUBLIC / RATE_LIMIT_PRIVATE /
RATE_LIMIT_AUTH_IP as "rate/burst". Failure budgets on credentials are `identity.guard`'s.
"""

from __future__ import annotations

import os

import redis

from chalicelib.core.errors import RateLimited
from chalicelib.platform.buckets import Bucket, Limit, Use, apply
from chalicelib.platform.logs import logger

PRIVATE_MESSAGE = "Private rate limit exceeded"


def public() -> Limit:
    return Limit.per_second("RATE_LIMIT_PUBLIC", "10/15", "Public rate limit exceeded")


def private() -> Limit:
    return Limit.per_second("RATE_LIMIT_PRIVATE", "15/30", PRIVATE_MESSAGE)


def credentials_ip() -> Limit:
    if os.environ.get("RATE_LIMIT_AUTH_IP"):
        return Limit.per_second("RATE_LIMIT_AUTH_IP", "", PRIVATE_MESSAGE)
    base = private()
    return Limit(base.rate * 2, base.burst * 2, PRIVATE_MESSAGE)


def public_bucket(ip: str) -> Bucket:
    return Bucket(f"ip:{ip}", public(), Use.TAKE)


def credentials_ip_bucket(ip: str) -> Bucket:
    return Bucket(f"authip:{ip}", credentials_ip(), Use.TAKE)


def user_bucket(user_id: str) -> Bucket:
    return Bucket(f"user:{user_id}", private(), Use.TAKE)


def take(bucket: Bucket, *, fail_open: bool) -> None:
    """Take one token from `bucket` or raise RateLimited with the seconds to wait.

    `fail_open`: whether a request goes on when Redis does not answer. The public limit does:
    it protects the service, and an outage of the limiter must not take public reads down too.
    Limits on authenticated requests do not (the RedisError reaches the route, which answers
    503): those requests need Redis anyway for sessions and replay protection, and without their
    limits a caller could spend the service's capacity on one account unchecked."""
    try:
        refused = apply([bucket])
    except redis.RedisError:
        if not fail_open:
            raise
        logger.warning("rate limiter unavailable; request allowed", extra={"bucket": bucket.key})
        return
    if refused is not None:
        raise RateLimited(refused.limit.message, refused.wait_s)
