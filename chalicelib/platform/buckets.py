"""Token buckets in Redis: several buckets of one request refilled, checked and taken at once.

A bucket holds up to `burst` tokens and refills at `rate` tokens per second. Each bucket of a call
is used in one of three ways:

- TAKE: the call needs a token and takes one;
- CHECK: the call needs a token but takes none (a failure budget, looked at before the work);
- CHARGE: a token is taken even when there is none, and the call is never refused (a failure,
  counted after the work). The bucket then owes tokens that its refill pays back first, so calls
  that passed a CHECK together before any of them was charged are all paid for.

One Lua script refills every bucket of the call, and either refuses the call (the bucket that
needs the longest wait, and how long) and writes nothing, or takes what it takes. Writing nothing
on a refusal means a refused call neither costs nor earns tokens. A bucket expires once it would
be full again. The buckets of one call are keys of one Redis, not of a cluster (the script
touches them together).

Time is Redis's clock (`TIME`), so that every Lambda shares one notion of now; `clock`, when set,
gives the time instead, so that tests decide exactly when tokens come back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from chalicelib.platform.cache import redis_client

_SCRIPT = """
local t
if ARGV[1] == '' then
  local now = redis.call('TIME')
  t = tonumber(now[1]) + tonumber(now[2]) / 1000000
else
  t = tonumber(ARGV[1])
end
local tokens = {}
local worst, wait = 0, 0
for i = 1, #KEYS do
  local rate, burst, mode = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), ARGV[3 * i + 1]
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local held = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or t
  held = math.min(burst, held + math.max(0, t - ts) * rate)
  tokens[i] = held
  if mode ~= 'charge' and held < 1 and (1 - held) / rate > wait then
    worst, wait = i, (1 - held) / rate
  end
end
if worst > 0 then
  return {worst, tostring(wait)}
end
for i = 1, #KEYS do
  local rate, burst, mode = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), ARGV[3 * i + 1]
  if mode ~= 'check' then
    local left = tokens[i] - 1
    redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', tostring(t))
    redis.call('PEXPIRE', KEYS[i], math.ceil((burst - left) / rate * 1000) + 1000)
  end
end
return {0, '0'}
"""

# When set, the time in seconds the buckets are refilled to, instead of Redis's clock.
clock: Callable[[], float] | None = None


class Use(Enum):
    TAKE = "take"
    CHECK = "check"
    CHARGE = "charge"


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # tokens per second
    burst: int  # tokens a full bucket holds
    message: str  # what a refused caller is told

    @classmethod
    def per_second(cls, env: str, default: str, message: str) -> Limit:
        """From `env` as "rate/burst": `rate` tokens a second, up to `burst`."""
        rate, _, burst = (os.environ.get(env) or default).partition("/")
        return cls(float(rate), int(burst), message)

    @classmethod
    def per_window(cls, env: str, default: str, message: str) -> Limit:
        """From `env` as "count/seconds": `count` at once, one back every seconds / count."""
        count, _, seconds = (os.environ.get(env) or default).partition("/")
        return cls(int(count) / float(seconds), int(count), message)


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    limit: Limit
    use: Use


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: Limit  # the bucket's limit that refused
    wait_s: int  # whole seconds until it would not refuse (at least 1)


def apply(buckets: Sequence[Bucket]) -> Refusal | None:
    """Refill `buckets` and use each as it says; a Refusal when one that needs a token has none.
    Redis errors propagate: each caller decides whether its limits fail open or closed."""
    if not buckets:
        return None
    args: list[str | float] = ["" if clock is None else repr(clock())]
    for b in buckets:
        args += [b.limit.rate, b.limit.burst, b.use.value]
    keys = [f"rl:{b.key}" for b in buckets]
    worst, wait = redis_client().eval(_SCRIPT, len(keys), *keys, *args)
    if int(worst) == 0:
        return None
    return Refusal(buckets[int(worst) - 1].limit, max(1, math.ceil(float(wait))))
