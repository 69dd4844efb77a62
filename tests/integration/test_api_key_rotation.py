"""API keys across a rotation of the configured secret: keys keep verifying under the secret of
their own key id, keys from before key ids keep verifying under the raw secret, and a key whose
secret is missing or wrong is refused with 401, never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.identity import signing
from chalicelib.marketdata import feed_protocol
from tests.conftest import Caller, signed

PASSPHRASE = "correct horse"


def _b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


def _get_accounts(user: Caller, key: dict[str, str]) -> tuple[int, Any]:
    return user.call("GET", "/accounts", headers=signed(key, "GET", "/accounts"))


def _key_id(database_url: str, key: dict[str, str]) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT key_id FROM api_keys WHERE key = %s", (key["key"],)).fetchone()
    assert row is not None
    return row[0]


def _rotate(monkeypatch: pytest.MonkeyPatch, old: str | None) -> None:
    """A new current secret under id 2; `old` is API_KEY_ENCRYPTION_KEYS_OLD (None: unset)."""
    monkeypatch.setenv("API_KEY_ENCRYPTION_KEY", _b64(os.urandom(32)))
    monkeypatch.setenv("API_KEY_ENCRYPTION_KEY_ID", "2")
    if old is None:
        monkeypatch.delenv("API_KEY_ENCRYPTION_KEYS_OLD", raising=False)
    else:
        monkeypatch.setenv("API_KEY_ENCRYPTION_KEYS_OLD", old)


def _key_from_before_key_ids(database_url: str, user: Caller) -> dict[str, str]:
    """A row as API keys were written before key ids: the raw configured secret encrypts the
    secret and keys the passphrase HMAC, and the row has no key id."""
    raw = base64.b64decode(os.environ["API_KEY_ENCRYPTION_KEY"])
    key, secret, nonce = secrets.token_hex(16), os.urandom(64), os.urandom(12)
    blob = nonce + AESGCM(raw).encrypt(nonce, secret, key.encode())
    mac = hmac.new(raw, PASSPHRASE.encode(), hashlib.sha256).hexdigest()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            """INSERT INTO api_keys (key, user_id, secret_ciphertext, passphrase_hash, permissions)
               VALUES (%s, %s, %s, %s, %s)""",
            (key, user.user_id, blob, mac, ["view"]),
        )
    return {"key": key, "secret": _b64(secret), "passphrase": PASSPHRASE}


def test_a_key_keeps_verifying_after_its_secret_is_rotated_out(
    make_user: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    assert _key_id(database_url, key) == "1"
    _rotate(monkeypatch, f"1:{os.environ['API_KEY_ENCRYPTION_KEY']}")
    assert _get_accounts(user, key)[0] == 200
    newer = user.new_key("view")
    assert _key_id(database_url, newer) == "2"
    assert _get_accounts(user, newer)[0] == 200


def test_a_key_from_before_key_ids_keeps_verifying(
    make_user: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user: Caller = make_user()
    key = _key_from_before_key_ids(database_url, user)
    assert _get_accounts(user, key)[0] == 200
    _rotate(monkeypatch, f"1:{os.environ['API_KEY_ENCRYPTION_KEY']}")
    assert _get_accounts(user, key)[0] == 200
    assert _key_id(database_url, key) is None


@pytest.mark.parametrize("old", [None, f"1:{_b64(bytes(32))}"], ids=["missing", "wrong"])
def test_a_key_whose_secret_is_missing_or_wrong_is_refused(
    make_user: Any, database_url: str, monkeypatch: pytest.MonkeyPatch, old: str | None
) -> None:
    user: Caller = make_user()
    key, before = user.new_key("view"), _key_from_before_key_ids(database_url, user)
    _rotate(monkeypatch, old)
    for k in (key, before):
        assert _get_accounts(user, k) == (401, {"message": "Invalid API Key"})
        ts = str(int(time.time()))
        auth = {
            "key": k["key"],
            "passphrase": k["passphrase"],
            "timestamp": ts,
            "signature": signing.sign(k["secret"], ts, "GET", feed_protocol.VERIFY_PATH, ""),
        }
        with pytest.raises(feed_protocol.FeedError, match="Invalid API Key"):
            feed_protocol.authenticate(auth)
