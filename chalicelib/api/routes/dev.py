"""Development-only routes: app.py registers them only when the faucet is switched on in a `local`
or `test` stage (`faucet.enabled`), never in `prod`."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.bodies import json_object
from chalicelib.api.http import route
from chalicelib.core.errors import NotFound
from chalicelib.identity.auth import Principal
from chalicelib.platform import db
from chalicelib.trading import faucet

bp = Blueprint(__name__)


@route(
    bp,
    "/dev/faucet",
    methods=("POST",),
    summary="Credit yourself (local and test only)",
    tag="dev",
    auth="view",
    errors=(404,),
    request={
        "type": "object",
        "required": ["currency", "amount"],
        "properties": {"currency": {"type": "string"}, "amount": {"type": "string"}},
    },
    response={
        "type": "object",
        "required": ["id", "currency", "amount"],
        "properties": {
            "id": {"type": "string"},
            "currency": {"type": "string"},
            "amount": {"type": "string"},
        },
    },
)
def post_faucet(principal: Principal) -> Any:
    # Asked again per request: a request's environment can differ from the one at import
    # (chalice.test.Client applies a stage's environment variables around each request).
    if not faucet.enabled():
        raise NotFound("NotFound")
    body = json_object(bp.current_request)
    with db.connection() as conn:
        return faucet.grant(conn, principal.user_id, body.get("currency"), body.get("amount"))
