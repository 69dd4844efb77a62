"""The development faucet: free funds, recorded as deposits so that "balances = deposits -
withdrawals" keeps holding.

It exists only in a `local` or `test` stage and only when switched on (`EXCHANGE_FAUCET=1`, which
`exchange dev` and the tests set), so neither a stage set wrongly nor a forgotten switch alone
hands out funds.
"""

from __future__ import annotations

import os
import uuid
from decimal import Decimal

import psycopg

from chalicelib.core import balances
from chalicelib.core.catalog import ASSETS
from chalicelib.core.errors import BadRequest
from chalicelib.core.money import MoneyError, parse_decimal, steps, to_units
from chalicelib.platform.config import LOCAL_STAGES, current_stage

SWITCH = "EXCHANGE_FAUCET"

# Enough to trade with, small enough that a typo cannot overflow anything downstream.
MAX_PER_CALL = {"BTC": Decimal(100), "ETH": Decimal(1000), "USD": Decimal(10_000_000)}


def enabled() -> bool:
    """Whether the faucet exists: switched on, in a `local` or `test` stage. Reads only the stage
    and the switch, so the app can ask at import with no other setting given."""
    return current_stage() in LOCAL_STAGES and os.environ.get(SWITCH) == "1"


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
