"""Signup, sessions, API keys and Coinbase request signing, against real Postgres and Redis."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from chalicelib.platform.config import Settings
from tests.conftest import JSON, Caller, signed


def _post(api: Any, path: str, body: Any, headers: dict[str, str] = JSON) -> tuple[int, Any]:
    reply = api.http.post(path, headers=headers, body=json.dumps(body))
    return reply.status_code, json.loads(reply.body)


def test_signup_normalises_email_and_refuses_duplicates(api: Any, make_user: Any) -> None:
    user: Caller = make_user()
    status, body = _post(
        api, "/auth/signup", {"email": f"  {user.email.upper()} ", "password": "another password!"}
    )
    assert (status, body) == (409, {"message": "email already registered"})
    status, _ = _post(api, "/auth/login", {"email": user.email.upper(), "password": user.password})
    assert status == 200


@pytest.mark.parametrize("password", ["short", " " * 12, "x" * 257, 12345678901, None])
def test_password_rules_are_stated(api: Any, password: Any) -> None:
    status, body = _post(api, "/auth/signup", {"email": "p@example.com", "password": password})
    assert status == 400
    assert body["message"] == "password must be 10 to 256 characters and not only spaces"


@pytest.mark.parametrize("email", ["no-at-sign", "a@b", "a b@c.d", 7, None, "x" * 250 + "@e.com"])
def test_bad_emails(api: Any, email: Any) -> None:
    status, body = _post(api, "/auth/signup", {"email": email, "password": "long enough pw"})
    assert status == 400 and "email" in body["message"]


def test_password_is_stored_as_argon2id(make_user: Any, database_url: str) -> None:
    user: Caller = make_user()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE id = %s", (user.user_id,))
        stored = row.fetchone()[0]  # type: ignore[index]
    assert stored.startswith("$argon2id$") and user.password not in stored


def test_wrong_password_and_unknown_email_look_the_same(api: Any, make_user: Any) -> None:
    user: Caller = make_user()
    wrong = _post(api, "/auth/login", {"email": user.email, "password": "not the password"})
    unknown = _post(api, "/auth/login", {"email": "nobody@example.com", "password": "whatever!!"})
    assert wrong == unknown == (401, {"message": "invalid email or password"})


def test_session_gives_access_until_logout(make_user: Any) -> None:
    user: Caller = make_user()
    assert user.call("GET", "/accounts")[0] == 200
    assert user.call("POST", "/auth/logout")[0] == 200
    assert user.call("GET", "/accounts") == (401, {"message": "Unauthorized"})


def test_session_expires(api: Any, make_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_TTL_S", "1")
    user: Caller = make_user()
    assert user.call("GET", "/accounts")[0] == 200
    time.sleep(1.6)
    assert user.call("GET", "/accounts") == (401, {"message": "Unauthorized"})


def test_missing_or_bogus_credentials(make_user: Any) -> None:
    user: Caller = make_user()
    assert user.call("GET", "/accounts", headers=JSON) == (401, {"message": "Unauthorized"})
    bogus = JSON | {"Authorization": "Bearer not-a-token"}
    assert user.call("GET", "/accounts", headers=bogus) == (401, {"message": "Unauthorized"})


def test_api_key_lifecycle(make_user: Any) -> None:
    user: Caller = make_user()
    key = user.new_key("view", "trade")
    assert key["permissions"] == ["view", "trade"] and key["passphrase"] == "correct horse"
    status, listed = user.call("GET", "/api-keys")
    assert status == 200 and [k["key"] for k in listed] == [key["key"]]
    assert "secret" not in listed[0]  # shown once, at creation
    assert user.call("GET", "/accounts", headers=signed(key, "GET", "/accounts"))[0] == 200
    assert user.call("DELETE", f"/api-keys/{key['key']}")[0] == 200
    assert user.call("GET", "/api-keys") == (200, [])
    assert user.call("GET", "/accounts", headers=signed(key, "GET", "/accounts")) == (
        401,
        {"message": "Invalid API Key"},
    )


def test_api_key_secret_is_encrypted_at_rest(make_user: Any, database_url: str) -> None:
    import base64

    user: Caller = make_user()
    key = user.new_key("view")
    with psycopg.connect(database_url) as conn:
        blob, passphrase = conn.execute(
            "SELECT secret_ciphertext, passphrase_hash FROM api_keys WHERE key = %s", (key["key"],)
        ).fetchone()  # type: ignore[misc]
    assert base64.b64decode(key["secret"]) not in bytes(blob)
    assert key["passphrase"] not in passphrase


def test_api_keys_cannot_manage_api_keys(make_user: Any) -> None:
    user: Caller = make_user()
    key = user.new_key("view", "trade", "transfer")
    body = json.dumps({"permissions": ["view"]})
    reply = user.call(
        "POST",
        "/api-keys",
        {"permissions": ["view"]},
        headers=signed(key, "POST", "/api-keys", body),
    )
    assert reply == (403, {"message": "this route needs a logged-in session, not an API key"})


@pytest.mark.parametrize("permissions", [[], ["admin"], "view", None, [1]])
def test_bad_permissions(make_user: Any, permissions: Any) -> None:
    user: Caller = make_user()
    status, body = user.call("POST", "/api-keys", {"permissions": permissions})
    assert status == 400 and "permissions" in body["message"]


def test_view_permission_is_required_for_accounts(make_user: Any) -> None:
    user: Caller = make_user()
    key = user.new_key("trade")
    assert user.call("GET", "/accounts", headers=signed(key, "GET", "/accounts")) == (
        403,
        {"message": "Forbidden"},
    )


def test_signed_request_accepted_then_replay_rejected(make_user: Any) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    body = json.dumps({"currency": "USD", "amount": "10"})
    headers = signed(key, "POST", "/dev/faucet", body)
    first = user.api.http.post("/dev/faucet", headers=headers, body=body)
    assert first.status_code == 200, first.body
    again = user.api.http.post("/dev/faucet", headers=headers, body=body)
    assert (again.status_code, json.loads(again.body)) == (401, {"message": "request replayed"})
    # GETs with the same signature are fine: clients sign with whole seconds
    get_headers = signed(key, "GET", "/accounts")
    assert user.call("GET", "/accounts", headers=get_headers)[0] == 200
    assert user.call("GET", "/accounts", headers=get_headers)[0] == 200


def test_stale_and_future_timestamps_rejected(make_user: Any) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    for ts in (str(int(time.time()) - 31), str(int(time.time()) + 31), "nan", "abc", "1e400"):
        headers = signed(key, "GET", "/accounts", timestamp=ts)
        assert user.call("GET", "/accounts", headers=headers) == (
            401,
            {"message": "invalid timestamp"},
        ), ts
    decimals = signed(key, "GET", "/accounts", timestamp=f"{time.time():.3f}")
    assert user.call("GET", "/accounts", headers=decimals)[0] == 200


def test_tampered_body_or_path_or_passphrase_rejected(make_user: Any) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    body = json.dumps({"currency": "USD", "amount": "10"})
    headers = signed(key, "POST", "/dev/faucet", body)
    tampered = body.replace("10", "99")
    reply = user.api.http.post("/dev/faucet", headers=headers, body=tampered)
    assert (reply.status_code, json.loads(reply.body)) == (401, {"message": "invalid signature"})
    other_path = signed(key, "GET", "/fees")
    assert user.call("GET", "/accounts", headers=other_path) == (
        401,
        {"message": "invalid signature"},
    )
    wrong_phrase = signed(key, "GET", "/accounts") | {"CB-ACCESS-PASSPHRASE": "nope"}
    assert user.call("GET", "/accounts", headers=wrong_phrase) == (
        401,
        {"message": "Invalid Passphrase"},
    )


def test_query_string_is_part_of_the_signature(make_user: Any) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    _, accounts = user.call("GET", "/accounts")
    path = f"/accounts/{accounts[0]['id']}/ledger?limit=5"
    assert user.call("GET", path, headers=signed(key, "GET", path))[0] == 200
    without_query = signed(key, "GET", path.split("?")[0])
    assert user.call("GET", path, headers=without_query)[0] == 401


def test_public_rate_limit_then_recovery(
    api: Any, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    from chalicelib.platform.cache import redis_client

    redis_client(settings.redis_url).delete("rl:ip:127.0.0.1")
    monkeypatch.setenv("RATE_LIMIT_PUBLIC", "10/15")
    statuses = [api.http.get("/time").status_code for _ in range(40)]
    assert statuses[:15] == [200] * 15 and 429 in statuses
    limited = api.http.get("/time")
    assert limited.status_code == 429
    assert json.loads(limited.body) == {"message": "Public rate limit exceeded"}
    assert int(limited.headers["Retry-After"]) >= 1
    time.sleep(0.5)  # 10 tokens/s: a few are back
    assert api.http.get("/time").status_code == 200


def test_private_rate_limit_is_per_caller(make_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_PRIVATE", "15/30")
    alice, bob = make_user(), make_user()
    statuses = [alice.call("GET", "/fees")[0] for _ in range(45)]
    assert statuses[:30] == [200] * 30 and statuses[-1] == 429
    assert alice.call("GET", "/fees") == (429, {"message": "Private rate limit exceeded"})
    assert bob.call("GET", "/fees")[0] == 200  # another caller's bucket is untouched
