"""Our own routes (Coinbase Exchange has none): signup, login, logout, API key management."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.bodies import json_object
from chalicelib.api.http import client_ip, route
from chalicelib.identity import apikeys, sessions, users
from chalicelib.identity.auth import Principal
from chalicelib.platform import db

bp = Blueprint(__name__)

_CREDENTIALS = {
    "type": "object",
    "required": ["email", "password"],
    "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
}
_KEY = {
    "type": "object",
    "required": ["key", "permissions", "created_at"],
    "properties": {
        "key": {"type": "string"},
        "created_at": {"type": "string"},
        "permissions": {"type": "array", "items": {"type": "string"}},
    },
}


@route(
    bp,
    "/auth/signup",
    methods=("POST",),
    summary="Create a user",
    tag="auth",
    status=201,
    request=_CREDENTIALS,
    errors=(409,),
    response={
        "type": "object",
        "required": ["user_id"],
        "properties": {"user_id": {"type": "string"}},
    },
)
def signup() -> Any:
    body = json_object(bp.current_request)
    return {"user_id": users.signup(body.get("email"), body.get("password"))}


@route(
    bp,
    "/auth/login",
    methods=("POST",),
    summary="Log in; returns a bearer token",
    tag="auth",
    request=_CREDENTIALS,
    errors=(401, 503),
    response={
        "type": "object",
        "required": ["token", "expires_at"],
        "properties": {"token": {"type": "string"}, "expires_at": {"type": "number"}},
    },
)
def login() -> Any:
    body = json_object(bp.current_request)
    ip = client_ip(bp.current_request)
    session = users.login(body.get("email"), body.get("password"), ip)
    return {"token": session.token, "expires_at": round(session.expires_at, 3)}


@route(
    bp,
    "/auth/logout",
    methods=("POST",),
    summary="End this session",
    tag="auth",
    auth="session",
    response={"type": "object"},
)
def logout(principal: Principal) -> Any:
    assert principal.token is not None
    sessions.destroy(principal.token)
    return {}


@route(
    bp,
    "/api-keys",
    methods=("POST",),
    summary="Create an API key (secret shown once)",
    tag="auth",
    status=201,
    auth="session",
    request={
        "type": "object",
        "required": ["permissions"],
        "properties": {
            "permissions": {
                "type": "array",
                "items": {"type": "string", "enum": list(apikeys.PERMISSIONS)},
            },
            "passphrase": {"type": "string"},
        },
    },
    response={
        "type": "object",
        "required": ["key", "secret", "passphrase", "permissions"],
        "properties": {
            "key": {"type": "string"},
            "secret": {"type": "string"},
            "passphrase": {"type": "string"},
            "permissions": {"type": "array", "items": {"type": "string"}},
        },
    },
)
def create_api_key(principal: Principal) -> Any:
    body = json_object(bp.current_request)
    permissions = apikeys.parse_permissions(body.get("permissions"))
    passphrase = apikeys.parse_passphrase(body.get("passphrase"))
    with db.connection() as conn:
        return apikeys.create(conn, principal.user_id, permissions, passphrase)


@route(
    bp,
    "/api-keys",
    summary="List your live API keys",
    tag="auth",
    auth="session",
    response={"type": "array", "items": _KEY},
)
def list_api_keys(principal: Principal) -> Any:
    with db.connection() as conn:
        return apikeys.list_keys(conn, principal.user_id)


@route(
    bp,
    "/api-keys/{key}",
    methods=("DELETE",),
    summary="Revoke an API key",
    tag="auth",
    auth="session",
    errors=(404,),
    response={"type": "object"},
)
def revoke_api_key(principal: Principal, key: str) -> Any:
    with db.connection() as conn:
        apikeys.revoke(conn, principal.user_id, key)
    return {}
