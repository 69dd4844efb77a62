"""The secrets behind API keys: configuration with key ids, and the keys derived from them."""

from __future__ import annotations

import base64
import os

import pytest

from chalicelib.identity import key_ring
from chalicelib.platform import config


def _b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("API_KEY_ENCRYPTION_KEY", "API_KEY_ENCRYPTION_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("API_KEY_ENCRYPTION_KEYS_OLD", raising=False)
    monkeypatch.setenv("STAGE", "prod")
    return monkeypatch


def test_the_current_secret_has_id_1_unless_told(env: pytest.MonkeyPatch) -> None:
    secret = os.urandom(32)
    env.setenv("API_KEY_ENCRYPTION_KEY", _b64(secret))
    assert config.api_key_secrets() == config.ApiKeySecrets("1", {"1": secret})
    env.setenv("API_KEY_ENCRYPTION_KEY_ID", "2026-12")
    assert config.api_key_secrets() == config.ApiKeySecrets("2026-12", {"2026-12": secret})


def test_old_secrets_are_read_beside_the_current_one(env: pytest.MonkeyPatch) -> None:
    new, one, two = os.urandom(32), os.urandom(32), os.urandom(32)
    env.setenv("API_KEY_ENCRYPTION_KEY", _b64(new))
    env.setenv("API_KEY_ENCRYPTION_KEY_ID", "3")
    env.setenv("API_KEY_ENCRYPTION_KEYS_OLD", f"1:{_b64(one)}, 2:{_b64(two)},")
    assert config.api_key_secrets() == config.ApiKeySecrets("3", {"3": new, "1": one, "2": two})


@pytest.mark.parametrize(
    ("key_id", "old", "message"),
    [
        ("has space", "", "API_KEY_ENCRYPTION_KEY_ID must be"),
        ("2", "1", "API_KEY_ENCRYPTION_KEYS_OLD must be id:base64"),
        ("2", "1:not base64!", "API_KEY_ENCRYPTION_KEYS_OLD's key '1' must be 32 bytes"),
        ("2", f"1:{_b64(b'short')}", "API_KEY_ENCRYPTION_KEYS_OLD's key '1' must be 32 bytes"),
        ("2", f"2:{_b64(bytes(32))}", "repeats the key id '2'"),
        ("2", f"1:{_b64(bytes(32))},1:{_b64(bytes(32))}", "repeats the key id '1'"),
    ],
)
def test_bad_settings_are_named(
    env: pytest.MonkeyPatch, key_id: str, old: str, message: str
) -> None:
    env.setenv("API_KEY_ENCRYPTION_KEY", _b64(os.urandom(32)))
    env.setenv("API_KEY_ENCRYPTION_KEY_ID", key_id)
    env.setenv("API_KEY_ENCRYPTION_KEYS_OLD", old)
    with pytest.raises(config.ConfigError, match=message):
        config.api_key_secrets()


def test_prod_needs_the_current_secret(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(config.ConfigError, match="API_KEY_ENCRYPTION_KEY must be set"):
        config.api_key_secrets()


def test_encryption_and_mac_keys_differ_from_each_other_and_the_secret(
    env: pytest.MonkeyPatch,
) -> None:
    secret = os.urandom(32)
    env.setenv("API_KEY_ENCRYPTION_KEY", _b64(secret))
    keys = key_ring.current()
    assert keys.key_id == "1"
    assert len(keys.encryption) == len(keys.mac) == 32
    assert len({keys.encryption, keys.mac, secret}) == 3
    assert key_ring.for_row("1") == keys
    assert key_ring.derive(os.urandom(32), "1") != keys  # a different secret, different keys


def test_rows_read_with_the_keys_of_their_own_id(env: pytest.MonkeyPatch) -> None:
    one, two = os.urandom(32), os.urandom(32)
    env.setenv("API_KEY_ENCRYPTION_KEY", _b64(two))
    env.setenv("API_KEY_ENCRYPTION_KEY_ID", "2")
    env.setenv("API_KEY_ENCRYPTION_KEYS_OLD", f"1:{_b64(one)}")
    assert key_ring.current() == key_ring.derive(two, "2") == key_ring.for_row("2")
    assert key_ring.for_row("1") == key_ring.derive(one, "1")
    # Written before key ids: the raw secret of id 1, as both keys.
    assert key_ring.for_row(None) == key_ring.RowKeys(None, one, one)
    with pytest.raises(key_ring.UnknownKeyId):
        key_ring.for_row("0")
    env.delenv("API_KEY_ENCRYPTION_KEYS_OLD")
    with pytest.raises(key_ring.UnknownKeyId):
        key_ring.for_row(None)
