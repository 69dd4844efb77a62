"""The development faucet (`local` and `test` stages only): free funds, recorded as deposits so
that "balances = deposits - withdrawals" keeps holding."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg

from chalicelib.core import balances
from chalicelib.core.catalog import ASSETS
from chalicelib.core.errors import BadRequest
from chalicelib.core.money import MoneyError, parse_decimal, steps, to_units

# Enough to trade with, small enough that a typo cannot overflow anything downstream.
MAX_PER_CALL = {"BTC": Decimal(100), "ETH": Decimal(1000), "USD": Decimal(10_000_000)}


def grant(conn: psycopg.Connection, user_id: str, currency: object, amount: object) -> dict:
    if not isinstance(currency, str) or currency not in ASSETS:
        raise BadRequest(f"currency must be one of {', '.join(ASSETS)}")
    asset = ASSETS[currency]
    if not isinstance(amount, str):  # a decimal string (API.md), never a JSON number
        raise BadRequest("amount must be a decimal string")
    value = parse_decimal(amount, "amount")
    if value > MAX_PER_CALL[currency]:
        raise BadRequest(f"amount must be at most {MAX_PER_CALL[currency]} {currency}")
    try:
        steps(value, asset.funding_increment)
    except MoneyError as exc:
        raise BadRequest(f"amount must be a multiple of {asset.funding_increment}") from exc
    units = to_units(value, asset.exponent)
    deposit_id = str(uuid.uuid4())
    conn.execute(
        """INSERT INTO deposits (id, user_id, asset, amount, address, status, completed_at)
           VALUES (%s, %s, %s, %s, 'faucet', 'completed', now())""",
        (deposit_id, user_id, currency, units),
    )
    balances.credit(
        conn, user_id, currency, units, "transfer", balances.LedgerRef(transfer_id=deposit_id)
    )
    return {"id": deposit_id, "currency": currency, "amount": f"{value:f}"}
