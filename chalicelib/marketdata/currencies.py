"""Currencies as the API shows them (Coinbase Exchange's shape), from Postgres."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from chalicelib.core.errors import NotFound

CURRENCY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "min_size", "status", "max_precision", "details"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "min_size": {"type": "string"},
        "status": {"type": "string"},
        "message": {"type": "string"},
        "max_precision": {"type": "string"},
        "convertible_to": {"type": "array", "items": {"type": "string"}},
        "details": {
            "type": "object",
            "properties": {"type": {"type": "string", "enum": ["crypto", "fiat"]}},
        },
    },
}


def _shape(row: tuple[Any, ...]) -> dict[str, Any]:
    asset_id, name, exponent, kind, increment, status = row
    return {
        "id": asset_id,
        "name": name,
        "min_size": f"{Decimal(increment).normalize():f}",
        "status": status,
        "message": "",
        "max_precision": f"{Decimal(1).scaleb(-exponent):f}",
        "convertible_to": [],
        "details": {
            "type": kind,
            "symbol": asset_id,
            "sort_order": 0,
            "min_withdrawal_amount": f"{Decimal(increment).normalize():f}",
        },
    }


_COLUMNS = "id, name, exponent, kind, funding_increment, status"


def list_currencies(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return [_shape(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM assets ORDER BY id")]


def get_currency(conn: psycopg.Connection, currency: str) -> dict[str, Any]:
    row = conn.execute(f"SELECT {_COLUMNS} FROM assets WHERE id = %s", (currency,)).fetchone()
    if row is None:
        raise NotFound("Currency not found")
    return _shape(row)
