"""Rate limits and failure budgets in front of authentication, through the Chalice test client on
real Postgres and Redis: the per-IP token before any credential lookup, failure budgets per IP
and per credential, the memory of unknown API keys, one private bucket per user, login limits,
the feed's user channel, and Redis being away.

The buckets' clock is frozen (`chalicelib.platform.buckets.clock`), so no token comes back while
a test runs however slow the machine; each test calls from addresses of its own (the test
client's source IP is patched), so runs and tests do not share buckets.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from chalice.local import LambdaEventConverter

from chalicelib.core.errors import RateLimited
from chalicelib.identity import apikeys, guard, passwords, sessions, signing
from chalicelib.marketdata import feed_protocol as fp
from chalicelib.marketdata import ws
from chalicelib.platform import buckets
from ops import services
from tests.conftest import JSON, Caller, signed


@dataclass
class Clock:
    now: float = field(default_factory=lambda: float(int(time.time())))  # whole: exact sums

    def __call__(self) -> float:
        return self.now


@dataclass
class Counter:
    calls: int = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return fn(*args, **kwargs)

        return counted


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(buckets, "clock", frozen)
    return frozen


@pytest.fixture
def from_ip(monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """Call `from_ip()` to make the test client's next requests come from a new address."""

    def new() -> str:
        ip = ".".join(["10", *(str(random.randrange(256)) for _ in range(3))])
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", ip)
        return ip

    return new


@pytest.fixture
def key_lookups(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts API key lookups in Postgres."""
    counter = Counter()
    monkeypatch.setattr(apikeys, "load", counter.wrap(apikeys.load))
    return counter


def _get(user: Caller, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    reply = user.api.http.get(path, headers=headers)
    return reply.status_code, json.loads(reply.body), reply.headers


def _login(api: Any, email: str, password: str) -> tuple[int, Any]:
    body = json.dumps({"email": email, "password": password})
    reply = api.http.post("/auth/login", headers=JSON, body=body)
    return reply.status_code, json.loads(reply.body)


PRIVATE = {"message": "Private rate limit exceeded"}
LOGIN = {"message": "too many login attempts; try again later"}


def test_the_per_ip_token_is_taken_before_credentials_are_looked_up(
    make_user: Any,
    clock: Clock,
    from_ip: Callable[[], str],
    key_lookups: Counter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    session_lookups = Counter()
    monkeypatch.setattr(sessions, "user_for", session_lookups.wrap(sessions.user_for))
    monkeypatch.setenv("RATE_LIMIT_AUTH_IP", "1/3")
    from_ip()
    replies = [_get(user, "/accounts", signed(key, "GET", "/accounts")) for _ in range(5)]
    assert [r[0] for r in replies] == [200, 200, 200, 429, 429]
    assert replies[3][1] == PRIVATE and int(replies[3][2]["Retry-After"]) == 1
    assert key_lookups.calls == 3
    assert _get(user, "/accounts", user.headers())[0] == 429  # a session from the same address
    assert session_lookups.calls == 0
    from_ip()
    assert _get(user, "/accounts", user.headers())[0] == 200
    assert session_lookups.calls == 1


def test_bad_signatures_spend_the_keys_budget_then_cost_no_lookup(
    make_user: Any,
    clock: Clock,
    from_ip: Callable[[], str],
    key_lookups: Counter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    monkeypatch.setenv("AUTH_FAILURES_PER_KEY", "3/60")
    statuses = []
    for _ in range(10):
        from_ip()  # a different address each time: the key's own budget refuses
        bad = signed(key, "GET", "/accounts") | {"CB-ACCESS-SIGN": "bm90IGl0"}
        status, body, headers = _get(user, "/accounts", bad)
        statuses.append((status, body))
    assert statuses == [(401, {"message": "invalid signature"})] * 3 + [(429, PRIVATE)] * 7
    assert int(headers["Retry-After"]) == 20  # 3 failures a minute: one back every 20 s
    assert key_lookups.calls == 3
    # The right signature is refused too: a guess cannot be confirmed while the budget is spent.
    assert _get(user, "/accounts", signed(key, "GET", "/accounts"))[:2] == (429, PRIVATE)
    clock.now += 20
    assert _get(user, "/accounts", signed(key, "GET", "/accounts"))[0] == 200
    assert key_lookups.calls == 4


def test_failures_from_one_ip_spend_its_budget_across_keys(
    make_user: Any,
    clock: Clock,
    from_ip: Callable[[], str],
    key_lookups: Counter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    monkeypatch.setenv("AUTH_FAILURES_PER_IP", "3/60")
    from_ip()
    made_up = [{**key, "key": uuid.uuid4().hex} for _ in range(5)]
    statuses = [_get(user, "/accounts", signed(k, "GET", "/accounts"))[:2] for k in made_up]
    assert statuses == [(401, {"message": "Invalid API Key"})] * 3 + [(429, PRIVATE)] * 2
    wrong_phrase = signed(key, "GET", "/accounts") | {"CB-ACCESS-PASSPHRASE": "guess"}
    assert _get(user, "/accounts", wrong_phrase)[:2] == (429, PRIVATE)
    assert _get(user, "/accounts", user.headers())[:2] == (429, PRIVATE)  # sessions too
    assert key_lookups.calls == 3
    from_ip()
    assert _get(user, "/accounts", signed(key, "GET", "/accounts"))[0] == 200


def test_bad_sessions_spend_the_ip_budget(
    api: Any,
    make_user: Any,
    clock: Clock,
    from_ip: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user: Caller = make_user()
    monkeypatch.setenv("AUTH_FAILURES_PER_IP", "2/60")
    from_ip()
    bogus = [JSON | {"Authorization": f"Bearer {uuid.uuid4().hex}"} for _ in range(3)]
    statuses = [_get(user, "/accounts", h)[:2] for h in bogus]
    assert statuses == [(401, {"message": "Unauthorized"})] * 2 + [(429, PRIVATE)]
    # Logging in again from there still works: logins have budgets of their own.
    assert _login(api, user.email, user.password)[0] == 200


def test_failures_that_passed_the_check_together_are_all_paid_for(
    settings: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_FAILURES_PER_KEY", "2/60")
    subject = guard.key_subject(uuid.uuid4().hex)
    for _ in range(4):  # four attempts in flight at once: each passes before any has failed
        guard.admit(None, subject)
    for _ in range(4):
        guard.failed(None, subject)
    with pytest.raises(RateLimited) as refused:
        guard.admit(None, subject)
    assert refused.value.headers == {"Retry-After": "90"}  # two owed and one to spend, 30 s each
    clock.now += 89
    with pytest.raises(RateLimited):
        guard.admit(None, subject)
    clock.now += 1
    guard.admit(None, subject)


def test_a_flood_of_made_up_keys_costs_one_lookup_per_key(
    make_user: Any, clock: Clock, from_ip: Callable[[], str], key_lookups: Counter
) -> None:
    from chalicelib.platform.cache import redis_client

    user: Caller = make_user()
    key = user.new_key("view")
    from_ip()
    made_up = [{**key, "key": uuid.uuid4().hex} for _ in range(20)]
    for _ in range(3):
        for k in made_up:
            assert _get(user, "/accounts", signed(k, "GET", "/accounts"))[:2] == (
                401,
                {"message": "Invalid API Key"},
            )
    assert key_lookups.calls == 20
    assert 0 < redis_client().ttl(f"apikey:unknown:{made_up[0]['key']}") <= 60
    assert _get(user, "/accounts", signed(key, "GET", "/accounts"))[0] == 200


def test_a_users_keys_and_sessions_share_one_private_bucket(
    make_user: Any, clock: Clock, from_ip: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = make_user(), make_user()
    first, second = alice.new_key("view"), alice.new_key("view")
    monkeypatch.setenv("RATE_LIMIT_PRIVATE", "1/4")
    from_ip()
    assert [_get(alice, "/fees", signed(first, "GET", "/fees"))[0] for _ in range(2)] == [200] * 2
    assert [_get(alice, "/fees", signed(second, "GET", "/fees"))[0] for _ in range(2)] == [200] * 2
    assert _get(alice, "/fees", signed(second, "GET", "/fees"))[:2] == (429, PRIVATE)
    assert _get(alice, "/fees", alice.headers())[:2] == (429, PRIVATE)
    assert _get(bob, "/fees", bob.headers())[0] == 200  # another user's bucket is untouched


def test_failed_logins_are_limited_per_account_across_ips(
    api: Any,
    make_user: Any,
    clock: Clock,
    from_ip: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = make_user(), make_user()
    hashes = Counter()
    monkeypatch.setattr(passwords, "verify", hashes.wrap(passwords.verify))
    monkeypatch.setenv("AUTH_FAILURES_PER_KEY", "3/60")
    replies = []
    for _ in range(5):
        from_ip()
        replies.append(_login(api, alice.email.upper(), "not the password"))
    assert replies == [(401, {"message": "invalid email or password"})] * 3 + [(429, LOGIN)] * 2
    from_ip()
    assert _login(api, alice.email, alice.password) == (429, LOGIN)
    assert hashes.calls == 3  # refused logins cost no lookup and no hash
    assert _login(api, bob.email, bob.password)[0] == 200
    clock.now += 20
    assert _login(api, alice.email, alice.password)[0] == 200


def test_failed_logins_are_limited_per_ip_across_accounts(
    api: Any, clock: Clock, from_ip: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_FAILURES_PER_IP", "3/60")
    from_ip()
    emails = [f"n{uuid.uuid4().hex[:10]}@example.com" for _ in range(5)]
    replies = [_login(api, email, "whatever it is") for email in emails]
    assert replies == [(401, {"message": "invalid email or password"})] * 3 + [(429, LOGIN)] * 2


def test_login_attempts_are_limited_per_account_and_per_ip(
    api: Any,
    make_user: Any,
    clock: Clock,
    from_ip: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    monkeypatch.setenv("LOGIN_ATTEMPTS", "2/60")
    statuses = []
    for _ in range(3):
        from_ip()
        statuses.append(_login(api, alice.email, alice.password))
    assert [s for s, _ in statuses] == [200, 200, 429] and statuses[2][1] == LOGIN
    from_ip()
    assert [_login(api, u.email, u.password)[0] for u in (bob, carol, bob)] == [200, 200, 429]


def _feed_auth(key: dict[str, str], signature: str | None = None) -> dict[str, str]:
    ts = str(time.time())
    good = signing.sign(key["secret"], ts, "GET", fp.VERIFY_PATH, "")
    return {
        "key": key["key"],
        "passphrase": key["passphrase"],
        "timestamp": ts,
        "signature": signature or good,
    }


def test_the_feeds_user_channel_has_the_same_budgets(
    make_user: Any, clock: Clock, key_lookups: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    monkeypatch.setenv("AUTH_FAILURES_PER_KEY", "3/60")
    reasons = []
    for _ in range(5):
        ip = f"10.9.{random.randrange(256)}.{random.randrange(256)}"
        try:
            fp.authenticate(_feed_auth(key, "bm90IGl0"), ip)
        except fp.FeedError as exc:
            reasons.append(str(exc))
    assert reasons == ["invalid signature"] * 3 + ["Private rate limit exceeded"] * 2
    with pytest.raises(fp.FeedError, match="Private rate limit exceeded"):
        fp.authenticate(_feed_auth(key))
    assert key_lookups.calls == 3
    clock.now += 20
    assert fp.authenticate(_feed_auth(key)) == user.user_id

    # Per IP, for sessions and keys alike, and answered as the feed's error message.
    monkeypatch.setenv("AUTH_FAILURES_PER_IP", "2/60")
    ip = f"10.8.{random.randrange(256)}.{random.randrange(256)}"
    for _ in range(2):
        with pytest.raises(fp.FeedError, match=r"^Unauthorized$"):
            fp.authenticate({"token": uuid.uuid4().hex}, ip)
    with pytest.raises(fp.FeedError, match="Private rate limit exceeded"):
        fp.authenticate({"token": user.token}, ip)
    posted: list[dict[str, Any]] = []
    body = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["user"]}
    ws.handle_message(
        None,  # type: ignore[arg-type]  # refused before any subscription is recorded
        "c1",
        json.dumps(body | {"token": user.token}),
        lambda _cid, msg: posted.append(msg),
        ip=ip,  # the connection's source IP, as on_message passes it
    )
    assert posted == [fp.error("Failed to subscribe", "Private rate limit exceeded")]


def test_redis_away_is_a_clean_503_for_authentication(
    api: Any, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{services.free_port()}/0")
    for headers in (user.headers(), signed(key, "GET", "/accounts")):
        status, body, _ = _get(user, "/accounts", headers)
        assert (status, body) == (503, {"message": "Service unavailable, try again later"})
    status, body = _login(api, user.email, user.password)
    assert (status, body) == (503, {"message": "Service unavailable, try again later"})
    with pytest.raises(fp.FeedError, match="Service unavailable"):
        fp.authenticate(_feed_auth(key), "10.7.0.1")
    # The public limit fails open: a public route that needs no Redis still answers.
    assert api.http.get("/time").status_code == 200
