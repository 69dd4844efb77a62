"""The whole order path over real HTTP: API (chalice local) -> SQS FIFO (LocalStack) ->
`exchange matcher` (a subprocess) -> Postgres, then `exchange check`; and ccxt as a client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from tests.conftest import ROOT, LiveApi, http_json, serve_api, service_env


class Trader:
    def __init__(self, api: LiveApi) -> None:
        self.url = api.url
        creds = {"email": f"t{uuid.uuid4().hex[:10]}@example.com", "password": "a long password"}
        assert http_json("POST", f"{self.url}/auth/signup", creds)[0] == 201
        self.headers = {
            "Authorization": "Bearer "
            + http_json("POST", f"{self.url}/auth/login", creds)[1]["token"]
        }

    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http_json(method, self.url + path, body, self.headers)

    def fund(self, currency: str, amount: str) -> None:
        assert self("POST", "/dev/faucet", {"currency": currency, "amount": amount})[0] == 200

    def balances(self) -> dict[str, tuple[str, str]]:
        return {a["currency"]: (a["available"], a["hold"]) for a in self("GET", "/accounts")[1]}

    def wait_settled(self, order_id: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status, order = self("GET", f"/orders/{order_id}")
            assert status == 200, order
            if order["status"] != "pending":
                return dict(order)
            if time.monotonic() > deadline:
                raise TimeoutError(f"order {order_id} still pending")
            time.sleep(0.05)


@pytest.fixture
def stack(fresh_db: str, redis_url: str, sqs_endpoint: str) -> Iterator[LiveApi]:
    """API and matcher on a database of this test's own."""
    env = service_env(fresh_db, redis_url, sqs_endpoint, f"e{uuid.uuid4().hex[:10]}")
    with serve_api(env) as api:
        matcher = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "matcher", "--wait", "1"],
            cwd=ROOT,
            env={**os.environ, "STAGE": "test", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            yield api
        finally:
            matcher.terminate()
            _, err = matcher.communicate(timeout=30)
            assert matcher.returncode == 0, err[-3000:]
    check = subprocess.run(
        [sys.executable, "-m", "ops.cli", "check"],
        cwd=ROOT,
        env={**os.environ, "STAGE": "test", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]


def test_two_users_cross_limit_and_market_orders(stack: LiveApi) -> None:
    alice, bob = Trader(stack), Trader(stack)
    alice.fund("BTC", "1")
    bob.fund("USD", "20000")

    status, ask = alice(
        "POST",
        "/orders",
        {"product_id": "BTC-USD", "side": "sell", "price": "30000.00", "size": "0.5"},
    )
    assert status == 200 and ask["status"] == "pending"
    assert alice.wait_settled(ask["id"])["status"] == "open"

    # bob takes 0.2 BTC with a limit buy through the ask: fills at the maker's price
    status, bid = bob(
        "POST",
        "/orders",
        {"product_id": "BTC-USD", "side": "buy", "price": "31000.00", "size": "0.2"},
    )
    assert status == 200
    filled = bob.wait_settled(bid["id"])
    assert (filled["status"], filled["done_reason"], filled["filled_size"]) == (
        "done",
        "filled",
        "0.20000000",
    )
    assert filled["executed_value"] == "6000.00000000"
    assert filled["fill_fees"] == "12.00000000"  # taker 0.2%

    # then a market buy for 3,006 USD of funds: 0.1 BTC at 30,000 plus its 0.2% fee
    status, market = bob(
        "POST",
        "/orders",
        {"product_id": "BTC-USD", "side": "buy", "type": "market", "funds": "3006.00"},
    )
    assert status == 200
    done = bob.wait_settled(market["id"])
    assert (done["status"], done["filled_size"], done["executed_value"], done["fill_fees"]) == (
        "done",
        "0.10000000",
        "3000.00000000",
        "6.00000000",
    )

    assert bob.balances() == {
        "BTC": ("0.30000000", "0.00000000"),
        "ETH": ("0.000000000000000000", "0.000000000000000000"),
        "USD": ("10982.00000000", "0.00000000"),
    }
    # alice: 0.3 BTC sold for 9,000 USD less the 0.1% maker fee; 0.2 BTC still on the book
    assert alice.balances()["BTC"] == ("0.50000000", "0.20000000")
    assert alice.balances()["USD"] == ("8991.00000000", "0.00000000")

    status, fills = alice("GET", f"/fills?order_id={ask['id']}")
    assert status == 200
    assert [(f["size"], f["price"], f["fee"], f["liquidity"], f["side"]) for f in fills] == [
        ("0.10000000", "30000.00000000", "3.00000000", "M", "sell"),
        ("0.20000000", "30000.00000000", "6.00000000", "M", "sell"),
    ]
    assert bob("GET", "/fills?product_id=BTC-USD")[1][0]["liquidity"] == "T"

    # cancelling the rest of alice's ask releases its hold
    assert alice("DELETE", f"/orders/{ask['id']}") == (200, ask["id"])
    deadline = time.monotonic() + 20
    while alice("GET", f"/orders/{ask['id']}")[1]["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert alice("GET", f"/orders/{ask['id']}")[1]["done_reason"] == "canceled"
    assert alice.balances()["BTC"] == ("0.70000000", "0.00000000")
    assert alice("DELETE", f"/orders/{ask['id']}") == (400, {"message": "Order already done"})


def test_ccxt_creates_fetches_and_cancels_orders_and_fetches_trades(stack: LiveApi) -> None:
    maker, taker = Trader(stack), Trader(stack)
    maker.fund("ETH", "5")
    taker.fund("USD", "10000")
    key = taker("POST", "/api-keys", {"permissions": ["view", "trade"], "passphrase": "pp"})[1]
    ex = ccxt.coinbaseexchange(
        {
            "apiKey": key["key"],
            "secret": key["secret"],
            "password": key["passphrase"],
            "enableRateLimit": False,
        }
    )
    ex.urls["api"] = {"public": stack.url, "private": stack.url}
    ex.load_markets()

    # a resting limit buy, fetched, listed as open, then cancelled
    order = ex.create_order("ETH/USD", "limit", "buy", 0.5, 1500.0)
    assert order["id"] and order["status"] == "open"  # ccxt calls pending "open"
    fetched = ex.fetch_order(order["id"], "ETH/USD")
    assert fetched["price"] == 1500.0 and fetched["amount"] == 0.5
    deadline = time.monotonic() + 20
    while not ex.fetch_open_orders("ETH/USD"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert ex.cancel_order(order["id"], "ETH/USD")
    while ex.fetch_order(order["id"], "ETH/USD")["status"] != "canceled":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    # a maker's ask, then ccxt's market buy by size takes it
    status, ask = maker(
        "POST",
        "/orders",
        {"product_id": "ETH-USD", "side": "sell", "price": "2000.00", "size": "1.5"},
    )
    assert status == 200
    assert maker.wait_settled(ask["id"])["status"] == "open"
    market = ex.create_order("ETH/USD", "market", "buy", 1.0)
    while ex.fetch_order(market["id"], "ETH/USD")["status"] != "closed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    closed = ex.fetch_order(market["id"], "ETH/USD")
    assert closed["filled"] == 1.0 and Decimal(str(closed["cost"])) == Decimal("2000")

    trades = ex.fetch_my_trades("ETH/USD")
    assert len(trades) == 1
    t = trades[0]
    assert (t["order"], t["side"], t["amount"], t["price"], t["takerOrMaker"]) == (
        market["id"],
        "buy",
        1.0,
        2000.0,
        "taker",
    )
    assert Decimal(str(t["fee"]["cost"])) == Decimal("4") and t["fee"]["currency"] == "USD"
    balance = ex.fetch_balance()
    assert balance["ETH"]["total"] == 1.0
    assert Decimal(str(balance["USD"]["total"])) == Decimal("7996")


def test_ccxt_reads_book_ticker_trades_and_candles(stack: LiveApi) -> None:
    maker, taker = Trader(stack), Trader(stack)
    maker.fund("BTC", "1")
    taker.fund("USD", "100000")
    asks = []
    for price in ("30000.00", "30010.00", "30020.00"):
        status, ask = maker(
            "POST",
            "/orders",
            {"product_id": "BTC-USD", "side": "sell", "price": price, "size": "0.1"},
        )
        assert status == 200
        asks.append(ask["id"])
    status, bid = taker(
        "POST",
        "/orders",
        {"product_id": "BTC-USD", "side": "buy", "price": "29990.00", "size": "0.2"},
    )
    assert status == 200
    status, take = taker(
        "POST",
        "/orders",
        {"product_id": "BTC-USD", "side": "buy", "price": "30000.00", "size": "0.05"},
    )
    assert status == 200
    for order_id in asks:
        assert maker.wait_settled(order_id)["status"] == "open"
    assert taker.wait_settled(bid["id"])["status"] == "open"
    assert taker.wait_settled(take["id"])["status"] == "done"

    ex = ccxt.coinbaseexchange({"enableRateLimit": False})
    ex.urls["api"] = {"public": stack.url, "private": stack.url}
    ex.load_markets()
    deadline = time.monotonic() + 10
    while True:  # market data is published after the batch commits
        book = ex.fetch_order_book("BTC/USD")
        if book["asks"] and book["asks"][0][1] == 0.05:
            break
        assert time.monotonic() < deadline, book
        time.sleep(0.1)
    assert book["bids"][0][:2] == [29990.0, 0.2]
    assert [level[:2] for level in book["asks"]] == [
        [30000.0, 0.05],
        [30010.0, 0.1],
        [30020.0, 0.1],
    ]
    ticker = ex.fetch_ticker("BTC/USD")
    assert (ticker["last"], ticker["bid"], ticker["ask"]) == (30000.0, 29990.0, 30000.0)
    trades = ex.fetch_trades("BTC/USD")
    assert [(t["price"], t["amount"]) for t in trades] == [(30000.0, 0.05)]
    candles = ex.fetch_ohlcv("BTC/USD", "1m")
    assert candles and candles[-1][1:] == [30000.0, 30000.0, 30000.0, 30000.0, 0.05]
