"""What stands in front of every credential lookup, so that credentials cannot be guessed online
and a flood of made-up ones costs no database work.

- Failure budgets: each failed authentication (unknown API key, wrong passphrase, bad signature
  or timestamp, replay, unknown or expired session, wrong password) takes a token from a budget
  of the client IP and one of the credential it named (the API key, the session token, the
  login's email). A request whose IP or credential has spent its budget is refused with 429
  before anything is looked up, whatever it carries: a right passphrase is refused too, so
  guessing stays at the budget's pace. Logins have budgets of their own, so that a client
  polling with an expired session does not lock its user out of logging in again.
- Login attempts of any outcome are limited per IP and per email (each one costs an argon2id
  hash).
- Unknown API keys are remembered for a short while (`UNKNOWN_KEY_TTL_S`), so that a flood of
  made-up keys costs one database query per key.

Budgets per credential let a caller who knows someone's API key id or email lock it for a
budget's window; they are short, and other keys, sessions and logged-in users are unaffected.

Every Redis error here propagates (fail closed): without the budgets a passphrase or password
could be guessed at full speed for as long as Redis is away, and sessions and replay protection
live in Redis anyway. The HTTP edge answers 503, the feed an error message.
"""

from __future__ import annotations

import hashlib

from chalicelib.core.errors import RateLimited
from chalicelib.identity import apikeys
from chalicelib.platform import db
from chalicelib.platform.buckets import Bucket, Limit, Use, apply
from chalicelib.platform.cache import redis_client

UNKNOWN_KEY_TTL_S = 60
PRIVATE_MESSAGE = "Private rate limit exceeded"  # Coinbase's words: clients match on them
LOGIN_MESSAGE = "too many login attempts; try again later"


def failures_per_ip() -> Limit:
    return Limit.per_window("AUTH_FAILURES_PER_IP", "10/60", PRIVATE_MESSAGE)


def failures_per_credential() -> Limit:
    return Limit.per_window("AUTH_FAILURES_PER_KEY", "10/60", PRIVATE_MESSAGE)


def login_attempts() -> Limit:
    return Limit.per_window("LOGIN_ATTEMPTS", "20/60", LOGIN_MESSAGE)


def _login(limit: Limit) -> Limit:
    return Limit(limit.rate, limit.burst, LOGIN_MESSAGE)


def _digest(value: str) -> str:
    """Credentials and emails name buckets only by a hash: Redis holds no secret or address."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def key_subject(key: str) -> str:
    return f"key:{key}"


def session_subject(token: str) -> str:
    return f"session:{_digest(token)}"


def _budgets(ip: str | None, subject: str | None, use: Use) -> list[Bucket]:
    found = []
    if ip is not None:
        found.append(Bucket(f"fail:ip:{ip}", failures_per_ip(), use))
    if subject is not None:
        found.append(Bucket(f"fail:{subject}", failures_per_credential(), use))
    return found


def _enforce(buckets: list[Bucket]) -> None:
    refused = apply(buckets)
    if refused is not None:
        raise RateLimited(refused.limit.message, refused.wait_s)


def admit(ip: str | None, subject: str | None, *also: Bucket) -> None:
    """Before looking up credentials: raise RateLimited when the IP's or the credential's
    failure budget is spent, and take the tokens of `also` (the per-IP request limit) in the
    same call. `None` leaves out a budget that does not apply."""
    _enforce([*also, *_budgets(ip, subject, Use.CHECK)])


def failed(ip: str | None, subject: str | None) -> None:
    """Count a failed authentication against the IP's and the credential's budgets."""
    apply(_budgets(ip, subject, Use.CHARGE))


def _account(email: str) -> str:
    return f"account:{_digest(email)}"


def _login_failures(ip: str, account: str, use: Use) -> list[Bucket]:
    return [
        Bucket(f"loginfail:ip:{ip}", _login(failures_per_ip()), use),
        Bucket(f"loginfail:{account}", _login(failures_per_credential()), use),
    ]


def admit_login(ip: str, email: str) -> None:
    """Before a login's lookup and hash: take an attempt of the IP and of the email, and raise
    RateLimited when either is spent or either's failed logins have spent their budget."""
    account = _account(email)
    attempts = login_attempts()
    _enforce(
        [
            Bucket(f"login:ip:{ip}", attempts, Use.TAKE),
            Bucket(f"login:{account}", attempts, Use.TAKE),
            *_login_failures(ip, account, Use.CHECK),
        ]
    )


def failed_login(ip: str, email: str) -> None:
    apply(_login_failures(ip, _account(email), Use.CHARGE))


def load_key(key: str, passphrase: str) -> apikeys.ApiKey | str:
    """`apikeys.load`, with unknown keys answered from Redis for `UNKNOWN_KEY_TTL_S`. Keys are
    random and made by the server, so a key remembered as unknown cannot come into existence
    meanwhile; a revoked key stays refused."""
    client = redis_client()
    unknown = f"apikey:unknown:{key}"
    if client.exists(unknown):
        return "Invalid API Key"
    with db.connection() as conn:
        found = apikeys.load(conn, key, passphrase)
    if found == "Invalid API Key":
        client.set(unknown, 1, ex=UNKNOWN_KEY_TTL_S)
    return found
