"""Balances, ledger, holds, fees, currencies and the faucet, against real Postgres and Redis."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from chalicelib.core import balances
from tests.conftest import Caller
from tests.integration.orderflow import write_moves


def _by_currency(user: Caller) -> dict[str, dict[str, str]]:
    status, accounts = user.call("GET", "/accounts")
    assert status == 200
    return {a["currency"]: a for a in accounts}


def test_a_new_user_has_one_empty_account_per_currency(make_user: Any) -> None:
    user: Caller = make_user()
    accounts = _by_currency(user)
    assert set(accounts) == {"BTC", "ETH", "USD"}
    assert accounts["BTC"]["balance"] == "0.00000000"
    assert accounts["ETH"]["available"] == "0.000000000000000000"
    assert all(a["profile_id"] == user.user_id for a in accounts.values())


def test_faucet_credits_exactly_and_writes_the_ledger(make_user: Any) -> None:
    user: Caller = make_user()
    user.fund("USD", "1234.56")
    user.fund("USD", "0.01")
    user.fund("ETH", "1.5")
    accounts = _by_currency(user)
    assert accounts["USD"]["balance"] == "1234.57000000"
    assert accounts["ETH"]["available"] == "1.500000000000000000"
    status, ledger = user.call("GET", f"/accounts/{accounts['USD']['id']}/ledger")
    assert status == 200
    assert [(e["amount"], e["balance"], e["type"]) for e in ledger] == [
        ("0.01000000", "1234.57000000", "transfer"),
        ("1234.56000000", "1234.56000000", "transfer"),
    ]
    assert all("transfer_id" in e["details"] for e in ledger)


@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        ("USD", "0.001"),
        ("USD", "-5"),
        ("USD", "NaN"),
        ("USD", "1e3"),
        ("USD", 0.5),
        ("USD", "10000001"),
        ("DOGE", "1"),
        (None, "1"),
        ("BTC", "0.000000001"),
    ],
)
def test_faucet_refuses_bad_amounts(make_user: Any, currency: Any, amount: Any) -> None:
    user: Caller = make_user()
    status, body = user.call("POST", "/dev/faucet", {"currency": currency, "amount": amount})
    assert status == 400 and body["message"]
    assert _by_currency(user)["USD"]["balance"] == "0.00000000"


def test_faucet_does_not_exist_in_prod(make_user: Any) -> None:
    from chalice.test import Client

    from app import app

    user: Caller = make_user()
    with Client(app, stage_name="prod") as prod:  # the stage's own STAGE=prod applies
        user.api = prod
        assert user.call("POST", "/dev/faucet", {"currency": "USD", "amount": "1"}) == (
            404,
            {"message": "NotFound"},
        )


def test_no_one_sees_another_users_accounts(make_user: Any) -> None:
    alice, mallory = make_user(), make_user()
    alice.fund("BTC", "1")
    alice_btc = _by_currency(alice)["BTC"]["id"]
    for path in (
        f"/accounts/{alice_btc}",
        f"/accounts/{alice_btc}/ledger",
        f"/accounts/{alice_btc}/holds",
    ):
        assert mallory.call("GET", path) == (404, {"message": "NotFound"}), path
        assert alice.call("GET", path)[0] == 200
    assert mallory.call("GET", "/accounts/not-a-uuid") == (404, {"message": "NotFound"})
    assert mallory.call("DELETE", f"/api-keys/{alice.new_key('view')['key']}") == (
        404,
        {"message": "NotFound"},
    )
    assert len(alice.call("GET", "/api-keys")[1]) == 1  # untouched


def test_ledger_pages_with_cursors(make_user: Any) -> None:
    user: Caller = make_user()
    for cents in range(1, 8):
        user.fund("USD", f"0.0{cents}")
    usd = _by_currency(user)["USD"]["id"]
    reply = user.api.http.get(f"/accounts/{usd}/ledger?limit=3", headers=user.headers())
    import json

    first = json.loads(reply.body)
    assert [e["amount"] for e in first] == ["0.07000000", "0.06000000", "0.05000000"]
    after = reply.headers["CB-AFTER"]
    _, second = user.call("GET", f"/accounts/{usd}/ledger?limit=3&after={after}")
    assert [e["amount"] for e in second] == ["0.04000000", "0.03000000", "0.02000000"]
    _, newer = user.call("GET", f"/accounts/{usd}/ledger?before={second[0]['id']}")
    assert [e["amount"] for e in newer] == ["0.07000000", "0.06000000", "0.05000000"]
    for bad in ("limit=0", "limit=1001", "limit=x", "after=abc", "after=1&before=2"):
        status, body = user.call("GET", f"/accounts/{usd}/ledger?{bad}")
        assert status == 400 and body["message"], bad


def test_holds_list_what_holds_the_funds(make_user: Any, database_url: str) -> None:
    user: Caller = make_user()
    user.fund("USD", "100")
    order_id = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        balances.place_hold(conn, user.user_id, "USD", 2_500_000_000)  # 25 USD
        conn.execute(
            """INSERT INTO orders (id, user_id, product_id, side, type, price, size, hold_asset,
                 hold_amount) VALUES (%s, %s, 'BTC-USD', 'buy', 'limit', 1, 1, 'USD', %s)""",
            (order_id, user.user_id, 2_500_000_000),
        )
    usd = _by_currency(user)["USD"]
    assert (usd["balance"], usd["available"], usd["hold"]) == (
        "100.00000000",
        "75.00000000",
        "25.00000000",
    )
    status, holds = user.call("GET", f"/accounts/{usd['id']}/holds")
    assert status == 200
    assert holds == [
        {
            "id": str(order_id),
            "created_at": holds[0]["created_at"],
            "amount": "25.00000000",
            "type": "order",
            "ref": str(order_id),
        }
    ]


def test_ledger_sums_equal_balances(make_user: Any, database_url: str) -> None:
    user: Caller = make_user()
    user.fund("BTC", "0.5")
    user.fund("BTC", "0.25")
    with psycopg.connect(database_url) as conn:
        write_moves(
            conn,
            [balances.Move(user.user_id, "BTC", -10_000_000, 0, "transfer", balances.LedgerRef())],
        )
        rows = conn.execute(
            """SELECT b.available + b.hold, coalesce(sum(l.amount), 0) FROM balances b
               LEFT JOIN ledger_entries l ON l.balance_id = b.id
               WHERE b.user_id = %s GROUP BY b.id""",
            (user.user_id,),
        ).fetchall()
    assert rows and all(total == ledger_sum for total, ledger_sum in rows)
    assert _by_currency(user)["BTC"]["balance"] == "0.65000000"


def test_balances_module_refuses_overdraft_and_bad_amounts(
    make_user: Any, database_url: str
) -> None:
    user: Caller = make_user()
    user.fund("ETH", "1")
    with psycopg.connect(database_url) as conn:
        with pytest.raises(balances.InsufficientFunds):
            balances.place_hold(conn, user.user_id, "ETH", 10**18 + 1)
        with pytest.raises(balances.InsufficientFunds), conn.transaction():
            write_moves(conn, [balances.Move(user.user_id, "ETH", 1, -1)])  # release no hold
        for bad in (0, -1, Decimal("1.5"), True):
            with pytest.raises(ValueError):
                balances.place_hold(conn, user.user_id, "ETH", bad)  # type: ignore[arg-type]


def test_fees_and_currencies(make_user: Any, api: Any) -> None:
    user: Caller = make_user()
    assert user.call("GET", "/fees") == (
        200,
        {"maker_fee_rate": "0.0010", "taker_fee_rate": "0.0020", "usd_volume": "0.00000000"},
    )
    import json

    currencies = {c["id"]: c for c in json.loads(api.http.get("/currencies").body)}
    assert {k: (c["max_precision"], c["details"]["type"]) for k, c in currencies.items()} == {
        "BTC": ("0.00000001", "crypto"),
        "ETH": ("0.000000000000000001", "crypto"),
        "USD": ("0.00000001", "fiat"),
    }
    assert currencies["USD"]["min_size"] == "0.01"
    assert api.http.get("/currencies/XYZ").status_code == 404
