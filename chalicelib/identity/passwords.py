"""Password rules and hashing (argon2id, argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from chalicelib.core.errors import BadRequest

MIN_LENGTH = 10
MAX_LENGTH = 256
RULES = f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters and not only spaces"

# Low-memory profile (64 MiB, 3 passes): memory-hard, and fits a 512 MB Lambda comfortably.
_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


@functools.cache
def _dummy_hash() -> str:
    """A hash verified when the email is unknown, so a login takes as long whether or not the
    user exists. Made with the hasher's own parameters (its verification costs what a real one
    does), once per process on first use: at import it would cost every cold start a hash,
    routes that never log anyone in included."""
    return _hasher.hash("not a password anyone has")


def check_rules(password: object) -> str:
    if not isinstance(password, str):
        raise BadRequest(RULES)
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH or not password.strip():
        raise BadRequest(RULES)
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
