"""Accounts, ledger, holds and fees (Coinbase Exchange shapes); `view` permission."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import json_response, route
from chalicelib.core import paging
from chalicelib.identity.auth import Principal
from chalicelib.platform import db
from chalicelib.trading import accounts

bp = Blueprint(__name__)


@route(
    bp,
    "/accounts",
    summary="Your accounts, one per currency",
    tag="accounts",
    auth="view",
    response={"type": "array", "items": accounts.ACCOUNT_SCHEMA},
)
def list_accounts(principal: Principal) -> Any:
    with db.connection() as conn:
        return accounts.list_accounts(conn, principal.user_id)


@route(
    bp,
    "/accounts/{account_id}",
    summary="One of your accounts",
    tag="accounts",
    auth="view",
    errors=(404,),
    response=accounts.ACCOUNT_SCHEMA,
)
def get_account(principal: Principal, account_id: str) -> Any:
    with db.connection() as conn:
        return accounts.get_account(conn, principal.user_id, account_id)


@route(
    bp,
    "/accounts/{account_id}/ledger",
    summary="An account's balance changes",
    tag="accounts",
    auth="view",
    errors=(404,),
    parameters=paging.PARAMETERS,
    response={"type": "array", "items": accounts.LEDGER_SCHEMA},
)
def get_ledger(principal: Principal, account_id: str) -> Any:
    page = paging.parse(bp.current_request.query_params)
    with db.connection() as conn:
        items, headers = accounts.ledger(conn, principal.user_id, account_id, page)
    return json_response(items, headers=headers)


@route(
    bp,
    "/accounts/{account_id}/holds",
    summary="What holds an account's funds",
    tag="accounts",
    auth="view",
    errors=(404,),
    parameters=paging.PARAMETERS,
    response={"type": "array", "items": accounts.HOLD_SCHEMA},
)
def get_holds(principal: Principal, account_id: str) -> Any:
    page = paging.parse(bp.current_request.query_params)
    with db.connection() as conn:
        items, headers = accounts.holds(conn, principal.user_id, account_id, page)
    return json_response(items, headers=headers)


@route(
    bp,
    "/fees",
    summary="Your fee rates and 30-day USD volume",
    tag="accounts",
    auth="view",
    response=accounts.FEES_SCHEMA,
)
def get_fees(principal: Principal) -> Any:
    with db.connection() as conn:
        return accounts.fees(conn, principal.user_id)
