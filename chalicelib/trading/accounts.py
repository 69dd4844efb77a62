"""What a user sees of their money: accounts (one per currency), ledger, holds, fee rates.

Every query is scoped by the caller's user id: another user's account id answers 404 exactly as a
missing one does.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from chalicelib.core import paging, wire
from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.errors import NotFound

ACCOUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "currency", "balance", "available", "hold", "profile_id"],
    "properties": {
        k: {"type": "string"}
        for k in ("id", "currency", "balance", "available", "hold", "profile_id")
    }
    | {"trading_enabled": {"type": "boolean"}},
}


def _account(row: tuple[Any, ...]) -> dict[str, Any]:
    balance_id, user_id, asset, available, hold = row
    return {
        "id": str(balance_id),
        "currency": asset,
        "balance": wire.asset_amount(available + hold, asset),
        "available": wire.asset_amount(available, asset),
        "hold": wire.asset_amount(hold, asset),
        "profile_id": str(user_id),
        "trading_enabled": True,
    }


def _uuid_or_404(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise NotFound("NotFound") from exc


def list_accounts(conn: psycopg.Connection, user_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT id, user_id, asset, available, hold FROM balances
           WHERE user_id = %s ORDER BY asset""",
        (user_id,),
    ).fetchall()
    return [_account(r) for r in rows]


def _owned(conn: psycopg.Connection, user_id: str, account_id: str) -> tuple[Any, ...]:
    row = conn.execute(
        """SELECT id, user_id, asset, available, hold FROM balances
           WHERE id = %s AND user_id = %s""",
        (_uuid_or_404(account_id), user_id),
    ).fetchone()
    if row is None:
        raise NotFound("NotFound")
    return tuple(row)


def get_account(conn: psycopg.Connection, user_id: str, account_id: str) -> dict[str, Any]:
    return _account(_owned(conn, user_id, account_id))


LEDGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "created_at", "amount", "balance", "type", "details"],
    "properties": {
        "id": {"type": "string"},
        "created_at": {"type": "string"},
        "amount": {"type": "string"},
        "balance": {"type": "string"},
        "type": {"type": "string"},
        "details": {"type": "object"},
    },
}


def ledger(
    conn: psycopg.Connection, user_id: str, account_id: str, page: paging.Page
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    balance_id, _, asset, _, _ = _owned(conn, user_id, account_id)
    before = paging.int_cursor(page.before, "before")
    after = paging.int_cursor(page.after, "after")
    columns = "id, created_at, amount, balance, type, order_id, product_id, trade_id, transfer_id"
    if before is not None:
        rows = conn.execute(
            f"""SELECT {columns} FROM ledger_entries WHERE balance_id = %s AND id > %s
                ORDER BY id ASC LIMIT %s""",
            (balance_id, before, page.limit),
        ).fetchall()[::-1]
    else:
        rows = conn.execute(
            f"""SELECT {columns} FROM ledger_entries WHERE balance_id = %s AND id < %s
                ORDER BY id DESC LIMIT %s""",
            (balance_id, after if after is not None else 2**63 - 1, page.limit),
        ).fetchall()
    items = []
    for entry_id, created, amount, balance, kind, order_id, product_id, trade_id, transfer in rows:
        details = {
            k: v
            for k, v in (
                ("order_id", order_id and str(order_id)),
                ("product_id", product_id),
                ("trade_id", trade_id and str(trade_id)),
                ("transfer_id", transfer and str(transfer)),
            )
            if v
        }
        sign = "-" if amount < 0 else ""
        items.append(
            {
                "id": str(entry_id),
                "created_at": wire.iso(created),
                "amount": sign + wire.asset_amount(abs(amount), asset),
                "balance": wire.asset_amount(balance, asset),
                "type": kind,
                "details": details,
            }
        )
    first = items[0]["id"] if items else None
    last = items[-1]["id"] if items else None
    return items, paging.headers(first, last)


HOLD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "created_at", "amount", "type", "ref"],
    "properties": {k: {"type": "string"} for k in ("id", "created_at", "amount", "type", "ref")},
}


def holds(
    conn: psycopg.Connection, user_id: str, account_id: str, page: paging.Page
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """What holds this account's funds: live orders and pending withdrawals."""
    _, _, asset, _, _ = _owned(conn, user_id, account_id)
    source = """SELECT id, created_at, hold_amount AS amount, 'order' AS type FROM orders
                WHERE user_id = %(u)s AND hold_asset = %(a)s AND hold_amount > 0
                UNION ALL
                SELECT id, created_at, amount + fee, 'transfer' FROM withdrawals
                WHERE user_id = %(u)s AND asset = %(a)s AND status = 'pending'"""
    before = None if page.before is None else paging.ts_cursor(page.before, "before")
    after = None if page.after is None else paging.ts_cursor(page.after, "after")
    params: dict[str, Any] = {"u": user_id, "a": asset, "n": page.limit}
    if before is not None:
        params |= {"t": before[0], "i": before[1]}
        rows = conn.execute(
            f"""SELECT * FROM ({source}) h WHERE (created_at, id) > (%(t)s, %(i)s)
                ORDER BY created_at, id LIMIT %(n)s""",
            params,
        ).fetchall()[::-1]
    else:
        where = ""
        if after is not None:
            params |= {"t": after[0], "i": after[1]}
            where = "WHERE (created_at, id) < (%(t)s, %(i)s)"
        rows = conn.execute(
            f"""SELECT * FROM ({source}) h {where}
                ORDER BY created_at DESC, id DESC LIMIT %(n)s""",
            params,
        ).fetchall()
    items = [
        {
            "id": str(i),
            "created_at": wire.iso(c),
            "amount": wire.asset_amount(a, asset),
            "type": t,
            "ref": str(i),
        }
        for i, c, a, t in rows
    ]
    cursor = [paging.encode_ts_cursor(r[1], str(r[0])) for r in rows]
    return items, paging.headers(cursor[0] if cursor else None, cursor[-1] if cursor else None)


FEES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["maker_fee_rate", "taker_fee_rate", "usd_volume"],
    "properties": {
        k: {"type": "string"} for k in ("maker_fee_rate", "taker_fee_rate", "usd_volume")
    },
}


def fees(conn: psycopg.Connection, user_id: str) -> dict[str, Any]:
    """The caller's fee rates and trailing 30-day USD volume (as maker or taker)."""
    row = conn.execute(
        """SELECT coalesce(sum(t.funds), 0) FROM trades t
           JOIN products p ON p.id = t.product_id AND p.quote_asset = 'USD'
           JOIN orders o ON o.id IN (t.maker_order_id, t.taker_order_id) AND o.user_id = %s
           WHERE t.created_at > now() - interval '30 days'""",
        (user_id,),
    ).fetchone()
    volume = int(row[0]) if row else 0
    sample = next(iter(PRODUCTS.values()))
    return {
        "maker_fee_rate": f"{sample.maker_fee_rate:.4f}",
        "taker_fee_rate": f"{sample.taker_fee_rate:.4f}",
        "usd_volume": wire.asset_amount(volume, "USD"),
    }
