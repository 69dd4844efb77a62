"""The API half of the order path: validation, holds, idempotency, the SQS message, reads.

The matcher is not running here; its half has its own tests. Real Postgres, Redis, LocalStack.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.messaging import queues
from chalicelib.messaging.order_queue import group_id
from chalicelib.messaging.sqs import sqs_client
from chalicelib.platform.config import Settings
from tests.conftest import Caller, LiveApi, http_json


def _funded(make_user: Any) -> Caller:
    user: Caller = make_user()
    user.fund("USD", "100000")
    user.fund("BTC", "2")
    user.fund("ETH", "10")
    return user


def _balance(user: Caller, currency: str) -> tuple[str, str, str]:
    accounts = {a["currency"]: a for a in user.call("GET", "/accounts")[1]}
    a = accounts[currency]
    return a["balance"], a["available"], a["hold"]


def _messages(settings: Settings, product: str) -> list[dict[str, Any]]:
    client = sqs_client(settings)
    url = client.get_queue_url(QueueName=queues.queue_name(settings.queue_prefix, product))[
        "QueueUrl"
    ]
    got = client.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        AttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    )
    return got.get("Messages", [])


def test_limit_buy_holds_notional_plus_worst_case_fee_and_queues_the_order(
    make_user: Any, settings: Settings
) -> None:
    user = _funded(make_user)
    status, order = user.call(
        "POST",
        "/orders",
        {"product_id": "BTC-USD", "side": "buy", "price": "100.00", "size": "0.5"},
    )
    assert status == 200, order
    assert (order["status"], order["type"], order["time_in_force"], order["stp"]) == (
        "pending",
        "limit",
        "GTC",
        "dc",
    )
    assert order["price"] == "100.00000000" and order["size"] == "0.50000000"
    # 0.5 BTC at 100 = 50 USD, plus at most 0.2% taker fee rounded up per lot
    assert _balance(user, "USD") == ("100000.00000000", "99949.90000000", "50.10000000")
    [message] = _messages(settings, "BTC-USD")
    assert json.loads(message["Body"]) == {
        "type": "order",
        "order_id": order["id"],
        "product_id": "BTC-USD",
        "user_id": user.user_id,
    }
    # The account picks one of the product's groups: its orders and cancels stay in order.
    assert message["Attributes"]["MessageGroupId"] == group_id("BTC-USD", user.user_id)
    assert message["Attributes"]["MessageGroupId"].startswith("BTC-USD.")
    assert message["Attributes"]["MessageDeduplicationId"] == order["id"]


def test_sells_hold_size_and_market_buys_hold_funds(make_user: Any) -> None:
    user = _funded(make_user)
    assert (
        user.call(
            "POST",
            "/orders",
            {"product_id": "ETH-BTC", "side": "sell", "price": "0.05", "size": "1.5"},
        )[0]
        == 200
    )
    assert _balance(user, "ETH")[2] == "1.500000000000000000"
    status, order = user.call(
        "POST",
        "/orders",
        {"product_id": "ETH-USD", "side": "buy", "type": "market", "funds": "250.50"},
    )
    assert status == 200, order
    assert order["funds"] == "250.50000000" and order["time_in_force"] == "IOC"
    assert _balance(user, "USD")[2] == "250.50000000"


def test_insufficient_funds_leaves_nothing_behind(make_user: Any) -> None:
    user = _funded(make_user)
    status, body = user.call(
        "POST",
        "/orders",
        {"product_id": "BTC-USD", "side": "sell", "price": "100", "size": "2.000001"},
    )
    assert (status, body) == (400, {"message": "Insufficient funds"})
    assert _balance(user, "BTC") == ("2.00000000", "2.00000000", "0.00000000")
    assert user.call("GET", "/orders?status=all") == (200, [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"side": "buy", "price": "1", "size": "1"}, "Product not found"),
        ({"product_id": "DOGE-USD", "side": "buy", "price": "1", "size": "1"}, "Product not found"),
        ({"product_id": "BTC-USD", "price": "1", "size": "1"}, "side is required"),
        (
            {"product_id": "BTC-USD", "side": "hold", "price": "1", "size": "1"},
            "side must be one of buy, sell",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "100.001", "size": "1"},
            "price too precise",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "100", "size": "0.0000001"},
            "size too precise",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "100", "size": "0.00005"},
            "size is too small. Minimum size is 0.0001",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "NaN", "size": "1"},
            "price is not a valid number",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "Infinity", "size": "1"},
            "price is not a valid number",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "1e3", "size": "1"},
            "price is not a valid number",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "-1", "size": "1"},
            "price is not a valid number",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "0", "size": "1"},
            "price must be positive",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": 100.5, "size": "1"},
            "price must be a decimal string",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": ["1"], "size": "1"},
            "price must be a decimal string",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "9" * 39, "size": "1"},
            "price is too large",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "100"},
            "price and size are required for limit orders",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "type": "market"},
            "size or funds is required for market orders",
        ),
        (
            {"product_id": "BTC-USD", "side": "sell", "type": "market", "funds": "10"},
            "funds is only allowed for market buys",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "type": "market", "funds": "0.5"},
            "funds is too small. Minimum funds is 1",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "type": "market", "funds": "10.001"},
            "funds too precise",
        ),
        (
            {
                "product_id": "BTC-USD",
                "side": "buy",
                "price": "1",
                "size": "1",
                "time_in_force": "GTT",
            },
            "time_in_force must be one of GTC, IOC, FOK",
        ),
        (
            {
                "product_id": "BTC-USD",
                "side": "buy",
                "price": "1",
                "size": "1",
                "time_in_force": "IOC",
                "post_only": True,
            },
            "post_only is only allowed with time_in_force GTC",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "1", "size": "1", "stp": "xx"},
            "stp must be one of dc, co, cn, cb",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "1", "size": "1", "client_oid": "x"},
            "client_oid must be a UUID",
        ),
        (
            {"product_id": "BTC-USD", "side": "buy", "price": "1", "size": "1", "leverage": 5},
            "unknown field: leverage",
        ),
    ],
)
def test_bad_orders_are_400_with_a_clear_message(
    make_user: Any, body: dict[str, Any], message: str
) -> None:
    user = _funded(make_user)
    assert user.call("POST", "/orders", body) == (400, {"message": message})
    assert _balance(user, "USD")[2] == "0.00000000"


@pytest.mark.parametrize("raw", ["", "[]", "null", "{", '{"price": NaN}', "x" * 20000])
def test_bodies_that_are_not_objects(make_user: Any, raw: str) -> None:
    user = _funded(make_user)
    reply = user.api.http.post("/orders", headers=user.headers(), body=raw)
    assert reply.status_code == 400 and json.loads(reply.body)["message"]


def test_client_oid_is_idempotent(make_user: Any, settings: Settings) -> None:
    user = _funded(make_user)
    body = {
        "product_id": "BTC-USD",
        "side": "sell",
        "price": "500",
        "size": "0.1",
        "client_oid": str(uuid.uuid4()),
    }
    first = user.call("POST", "/orders", body)
    second = user.call("POST", "/orders", body)
    assert first == second and first[0] == 200
    assert _balance(user, "BTC")[2] == "0.10000000"  # held once
    assert len(_messages(settings, "BTC-USD")) == 1
    assert user.call("GET", f"/orders/client:{body['client_oid']}")[1]["id"] == first[1]["id"]


def test_reads_cancels_and_nobody_elses_orders(make_user: Any, settings: Settings) -> None:
    user, other = _funded(make_user), _funded(make_user)
    ids = []
    for price in ("101", "102", "103"):
        status, order = user.call(
            "POST",
            "/orders",
            {"product_id": "BTC-USD", "side": "sell", "price": price, "size": "0.01"},
        )
        ids.append(order["id"])
    status, listed = user.call("GET", "/orders")
    assert status == 200 and [o["id"] for o in listed] == ids[::-1]
    assert user.call("GET", "/orders?status=done")[1] == []
    assert user.call("GET", "/orders?product_id=ETH-USD")[1] == []
    assert user.call("GET", "/orders?status=bogus")[0] == 400
    page = user.api.http.get("/orders?limit=2", headers=user.headers())
    assert [o["id"] for o in json.loads(page.body)] == ids[:0:-1]
    rest = user.call("GET", f"/orders?limit=2&after={page.headers['CB-AFTER']}")[1]
    assert [o["id"] for o in rest] == ids[:1]

    assert other.call("GET", f"/orders/{ids[0]}") == (404, {"message": "order not found"})
    assert other.call("DELETE", f"/orders/{ids[0]}") == (404, {"message": "order not found"})
    assert user.call("GET", f"/orders/{uuid.uuid4()}") == (404, {"message": "order not found"})
    assert user.call("GET", "/orders/garbage") == (404, {"message": "order not found"})

    assert user.call("DELETE", f"/orders/{ids[0]}") == (200, ids[0])
    assert sorted(user.call("DELETE", "/orders?product_id=BTC-USD")[1]) == sorted(ids)
    sent = [json.loads(m["Body"]) for m in _messages(settings, "BTC-USD")]
    # ids[0] was cancelled twice: its second cancel is deduplicated by SQS
    assert [(m["type"], m["order_id"]) for m in sent] == [
        *[("order", i) for i in ids],
        *[("cancel", i) for i in ids],
    ]


def test_fills_need_a_filter(make_user: Any) -> None:
    user = _funded(make_user)
    assert user.call("GET", "/fills") == (400, {"message": "order_id or product_id is required"})
    assert user.call("GET", "/fills?product_id=BTC-USD") == (200, [])


def test_view_only_keys_cannot_trade(make_user: Any) -> None:
    from tests.conftest import signed

    user = _funded(make_user)
    key = user.new_key("view")
    body = json.dumps({"product_id": "BTC-USD", "side": "sell", "price": "1", "size": "1"})
    reply = user.api.http.post("/orders", headers=signed(key, "POST", "/orders", body), body=body)
    assert reply.status_code == 403


def test_concurrent_orders_never_overdraw_one_balance(live_api: LiveApi) -> None:
    creds = {"email": f"race{uuid.uuid4().hex[:8]}@example.com", "password": "a long password"}
    http_json("POST", f"{live_api.url}/auth/signup", creds)
    token = http_json("POST", f"{live_api.url}/auth/login", creds)[1]["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (
        http_json("POST", f"{live_api.url}/dev/faucet", {"currency": "BTC", "amount": "1"}, bearer)[
            0
        ]
        == 200
    )

    def sell(_: int) -> int:
        return http_json(
            "POST",
            f"{live_api.url}/orders",
            {"product_id": "BTC-USD", "side": "sell", "price": "1000", "size": "0.3"},
            bearer,
        )[0]

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(sell, range(32)))
    assert statuses.count(200) == 3 and statuses.count(400) == 29
    accounts = {
        a["currency"]: a for a in http_json("GET", f"{live_api.url}/accounts", headers=bearer)[1]
    }
    assert (accounts["BTC"]["available"], accounts["BTC"]["hold"]) == ("0.10000000", "0.90000000")
