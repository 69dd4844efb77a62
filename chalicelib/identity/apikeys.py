"""API keys: creation, listing, revocation, and the secrets that sign requests.

A key's secret must be readable by the server (HMAC verification needs it), so it cannot be
hashed. It is encrypted with AES-256-GCM, bound to its API key id as associated data; the
passphrase is kept only as an HMAC. Both keys are derived from a configured secret
(`API_KEY_ENCRYPTION_KEY`, a secret-store value in `prod`) and the row records that secret's id,
so the secret can be rotated (key_ring.py). A leaked database alone therefore cannot sign
requests, and a ciphertext copied onto another key's row does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.identity import key_ring
from chalicelib.platform.logs import logger

PERMISSIONS = ("view", "trade", "transfer")
MAX_KEYS_PER_USER = 50


@dataclass(frozen=True, slots=True)
class ApiKey:
    key: str
    user_id: str
    secret: bytes  # the raw HMAC key (clients hold its base64)
    permissions: frozenset[str]


def _passphrase_mac(keys: key_ring.RowKeys, passphrase: str) -> str:
    return hmac.new(keys.mac, passphrase.encode(), hashlib.sha256).hexdigest()


def _encrypt(keys: key_ring.RowKeys, key: str, secret: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(keys.encryption).encrypt(nonce, secret, key.encode())


def _decrypt(keys: key_ring.RowKeys, key: str, blob: bytes) -> bytes:
    return AESGCM(keys.encryption).decrypt(blob[:12], blob[12:], key.encode())


def parse_permissions(value: object) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(p, str) and p in PERMISSIONS for p in value)
    ):
        raise BadRequest(f"permissions must be a non-empty list of {', '.join(PERMISSIONS)}")
    return sorted(set(value), key=PERMISSIONS.index)


def parse_passphrase(value: object) -> str:
    if value is None:
        return secrets.token_urlsafe(12)
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isprintable():
        raise BadRequest("passphrase must be 1 to 128 printable characters")
    return value


def create(
    conn: psycopg.Connection, user_id: str, permissions: list[str], passphrase: str
) -> dict[str, Any]:
    count = conn.execute(
        "SELECT count(*) FROM api_keys WHERE user_id = %s AND revoked_at IS NULL", (user_id,)
    ).fetchone()
    if count is not None and count[0] >= MAX_KEYS_PER_USER:
        raise BadRequest(f"at most {MAX_KEYS_PER_USER} API keys per user")
    key = secrets.token_hex(16)
    secret = secrets.token_bytes(64)
    keys = key_ring.current()
    conn.execute(
        """INSERT INTO api_keys
             (key, user_id, secret_ciphertext, passphrase_hash, permissions, key_id)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (
            key,
            user_id,
            _encrypt(keys, key, secret),
            _passphrase_mac(keys, passphrase),
            permissions,
            keys.key_id,
        ),
    )
    return {
        "key": key,
        "secret": base64.b64encode(secret).decode(),
        "passphrase": passphrase,
        "permissions": permissions,
    }


def _shape(key: str, permissions: list[str], created_at: datetime) -> dict[str, Any]:
    return {
        "key": key,
        "permissions": permissions,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
    }


def list_keys(conn: psycopg.Connection, user_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT key, permissions, created_at FROM api_keys
           WHERE user_id = %s AND revoked_at IS NULL ORDER BY created_at DESC""",
        (user_id,),
    ).fetchall()
    return [_shape(*row) for row in rows]


def revoke(conn: psycopg.Connection, user_id: str, key: str) -> None:
    # Another user's key answers exactly like a missing one: no way to probe for keys.
    row = conn.execute(
        """UPDATE api_keys SET revoked_at = now()
           WHERE key = %s AND user_id = %s AND revoked_at IS NULL RETURNING 1""",
        (key, user_id),
    ).fetchone()
    if row is None:
        raise NotFound("NotFound")


def load(conn: psycopg.Connection, key: str, passphrase: str) -> ApiKey | str:
    """The live key, or the Coinbase message explaining why not.

    A key whose configured secret is missing or wrong (a rotation that dropped or changed its
    id) is an invalid key to the client and an error in the logs, for the operator to restore
    the secret under its id.
    """
    row = conn.execute(
        """SELECT user_id, secret_ciphertext, passphrase_hash, permissions, key_id FROM api_keys
           WHERE key = %s AND revoked_at IS NULL""",
        (key,),
    ).fetchone()
    if row is None:
        return "Invalid API Key"
    user_id, blob, passphrase_hash, permissions, key_id = row
    try:
        keys = key_ring.for_row(key_id)
    except key_ring.UnknownKeyId as exc:
        logger.error("API key secret id not configured", extra={"key_id": str(exc)})
        return "Invalid API Key"
    # Decrypted first: GCM's tag proves the key is right, so a wrong secret configured under the
    # id shows as such rather than as a wrong passphrase.
    try:
        secret = _decrypt(keys, key, bytes(blob))
    except InvalidTag:
        logger.error("API key secret does not decrypt", extra={"key_id": key_id})
        return "Invalid API Key"
    if not hmac.compare_digest(passphrase_hash, _passphrase_mac(keys, passphrase)):
        return "Invalid Passphrase"
    return ApiKey(key, str(user_id), secret, frozenset(permissions))
