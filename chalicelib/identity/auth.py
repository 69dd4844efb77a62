"""Who is calling: a session (Bearer token) or a signed API key request, and what they may do."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from chalice.app import Request

from chalicelib.core.errors import Forbidden, Unauthorized
from chalicelib.identity import apikeys, guard, sessions, signing
from chalicelib.platform.buckets import Bucket
from chalicelib.platform.cache import redis_client

ALL_PERMISSIONS = frozenset(apikeys.PERMISSIONS)
REPLAY_TTL_S = 2 * signing.MAX_SKEW_S + 5  # a signature is useless once its timestamp is stale


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    permissions: frozenset[str]
    token: str | None = None  # the session token, for logout


def signed_path(request: Request) -> str:
    """The path and query exactly as a client signs them (without API Gateway's stage prefix)."""
    context = request.context or {}
    path = context.get("path") or request.path
    stage = context.get("stage")
    if stage and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    query = request.to_original_event().get("multiValueQueryStringParameters")
    return f"{path}?{urlencode(query, doseq=True)}" if query else path


def authenticate(
    request: Request,
    permission: str | None = None,
    *,
    ip: str | None = None,
    also: tuple[Bucket, ...] = (),
) -> Principal:
    """The caller, or Unauthorized / Forbidden. Before any lookup, the failure budgets of `ip`
    and of the credential refuse a caller who has failed too often (`guard.admit`), and the
    buckets of `also` (the per-IP request limit) are taken in the same call. A credential that
    fails counts against both budgets; a request that names none guessed nothing."""
    subject = _subject(request.headers)
    guard.admit(ip, subject, *also)
    try:
        principal = _identify(request)
    except Unauthorized:
        if subject is not None:
            guard.failed(ip, subject)
        raise
    if permission is not None and permission not in principal.permissions:
        raise Forbidden("Forbidden")
    return principal


def _subject(headers: Mapping[str, str]) -> str | None:
    """The credential a request names, for its failure budget; None when it names nothing that
    would be looked up (then only the IP's budget is checked)."""
    bearer = headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        return guard.session_subject(bearer[7:].strip())
    key = headers.get("cb-access-key", "")
    return guard.key_subject(key) if key and len(key) <= 64 else None


def _identify(request: Request) -> Principal:
    headers = request.headers
    bearer = headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        token = bearer[7:].strip()
        user_id = sessions.user_for(token)
        if user_id is None:
            raise Unauthorized("Unauthorized")
        principal = Principal(user_id, ALL_PERMISSIONS, token=token)
    elif "cb-access-key" in headers:
        principal = _api_key(request)
    else:
        raise Unauthorized("Unauthorized")
    return principal


def _api_key(request: Request) -> Principal:
    headers = request.headers
    key = headers.get("cb-access-key", "")
    provided = headers.get("cb-access-sign", "")
    timestamp = headers.get("cb-access-timestamp", "")
    passphrase = headers.get("cb-access-passphrase", "")
    if not key or len(key) > 64 or not key.isascii() or not key.isprintable():
        raise Unauthorized("Invalid API Key")
    if not passphrase.isprintable():  # no key's (apikeys.parse_passphrase); "" matches no key
        passphrase = ""
    found = guard.load_key(key, passphrase)
    if isinstance(found, str):
        raise Unauthorized(found)
    if not signing.timestamp_ok(timestamp, time.time()):
        raise Unauthorized("invalid timestamp")
    raw = request.raw_body or b""
    body = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if not signing.matches(
        found.secret, provided, timestamp, request.method, signed_path(request), body
    ):
        raise Unauthorized("invalid signature")
    # A state-changing request is accepted once per signature. GETs may repeat: clients sign
    # with whole seconds, so identical reads within one second are normal.
    if request.method not in {"GET", "HEAD", "OPTIONS"} and not redis_client().set(
        f"replay:{key}:{provided}", 1, nx=True, ex=REPLAY_TTL_S
    ):
        raise Unauthorized("request replayed")
    return Principal(found.user_id, found.permissions)
