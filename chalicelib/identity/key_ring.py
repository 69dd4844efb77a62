"""The keys that protect API keys at rest: derived from the configured secrets, found by key id.

Each configured secret (`config.api_key_secrets`) yields two independent keys by HKDF-SHA256,
one per use, told apart by the HKDF `info` label: an AES-256-GCM key for secrets and an HMAC key
for passphrases. Neither use can then be turned against the other, and the configured secret
itself touches no data.

An API key row records the id of the secret it was written under. Rotation: a new secret
becomes current under a new id, the previous one moves to the old secrets, and every row keeps
reading with the keys of its own id until it is gone. A row without an id was written before key
ids, with the raw secret as both keys; that secret is the one configured under LEGACY_KEY_ID.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chalicelib.platform.config import api_key_secrets

# The secret that rows without a key id were written under: API_KEY_ENCRYPTION_KEY_ID's default,
# the id the one secret configured before key ids takes.
LEGACY_KEY_ID = "1"

_ENCRYPTION_INFO = b"exchange-orderbook/api-key/secret-encryption/v1"
_MAC_INFO = b"exchange-orderbook/api-key/passphrase-hmac/v1"


class UnknownKeyId(LookupError):
    """A row's key id names no configured secret (rotated out of the configuration)."""


@dataclass(frozen=True, slots=True)
class RowKeys:
    """The keys of one row: `key_id` is what the row records (None: written before key ids)."""

    key_id: str | None
    encryption: bytes  # AES-256-GCM
    mac: bytes  # HMAC-SHA256 of the passphrase


@functools.lru_cache(maxsize=16)  # a few secrets per process; derived once, not per request
def derive(secret: bytes, key_id: str) -> RowKeys:
    return RowKeys(key_id, _hkdf(secret, _ENCRYPTION_INFO), _hkdf(secret, _MAC_INFO))


def _hkdf(secret: bytes, info: bytes) -> bytes:
    # No salt: the secret is already uniformly random (32 bytes), as RFC 5869 allows.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def current() -> RowKeys:
    """The keys new rows are written under."""
    configured = api_key_secrets()
    return derive(configured.by_id[configured.current_id], configured.current_id)


def for_row(key_id: str | None) -> RowKeys:
    """The keys a row written under `key_id` reads with; UnknownKeyId if none is configured."""
    wanted = LEGACY_KEY_ID if key_id is None else key_id
    secret = api_key_secrets().by_id.get(wanted)
    if secret is None:
        raise UnknownKeyId(wanted)
    if key_id is None:
        return RowKeys(None, secret, secret)
    return derive(secret, key_id)
