"""Signing up and logging in."""

from __future__ import annotations

import re
import uuid

import psycopg

from chalicelib.core import balances
from chalicelib.core.errors import BadRequest, Conflict, Unauthorized
from chalicelib.identity import guard, passwords, sessions
from chalicelib.platform import db

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalise_email(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest("email must be a string")
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL_RE.fullmatch(email):
        raise BadRequest("email is not a valid address")
    return email


def signup(email: object, password: object) -> str:
    address = normalise_email(email)
    hashed = passwords.hash_password(passwords.check_rules(password))
    user_id = str(uuid.uuid4())
    try:
        with db.connection() as conn:
            conn.execute(
                "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, %s)",
                (user_id, address, hashed),
            )
            balances.open_accounts(conn, user_id)
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict("email already registered") from exc
    return user_id


def login(email: object, password: object, ip: str) -> sessions.Session:
    """A new session, or Unauthorized. Attempts and failures are limited per client IP and per
    email before the user is looked up and the password hashed (`guard.admit_login`)."""
    if not isinstance(password, str):
        raise BadRequest("password must be a string")
    address = normalise_email(email)
    guard.admit_login(ip, address)
    with db.connection() as conn:
        row = conn.execute(
            "SELECT id, password_hash FROM users WHERE email = %s AND NOT is_system", (address,)
        ).fetchone()
    if not passwords.verify(row[1] if row else None, password[: passwords.MAX_LENGTH + 1]):
        guard.failed_login(ip, address)
        raise Unauthorized("invalid email or password")
    assert row is not None
    return sessions.create(str(row[0]))
