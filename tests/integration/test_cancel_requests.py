"""A cancel the API accepted is never lost: it is recorded on the order before its message is
sent, and the matcher's sweeper re-sends the cancel of a live order whose send failed.

The API (Chalice test client) and the matcher (a thread, `flow`) share this test's own database
and queues, so the matcher sees exactly the orders placed here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.messaging import order_queue
from chalicelib.messaging.order_queue import QueueMessage
from chalicelib.platform.config import Settings
from matcher import sweeper
from matcher.check import run_check
from matcher.options import Options
from tests.conftest import Caller, service_env
from tests.integration.orderflow import Bal, Flow, units

SWEEPING = Options(wait_s=1, poll_s=0.2, sweep_every_s=0.2, sweep_after_s=1)


def assert_checked(flow: Flow) -> None:
    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, matcher_settings: Settings) -> Settings:
    """The API's environment (tests/conftest.py `api` uses this fixture) pointed at the
    database and queues of this test's matcher."""
    c = matcher_settings
    env = service_env(c.database_url, c.redis_url, c.aws_endpoint_url or "", c.queue_prefix)
    for key, value in {"STAGE": "test", **env}.items():
        monkeypatch.setenv(key, value)
    return c


@contextmanager
def sqs_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every SendMessage the API makes fails for the block."""

    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("SQS is unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(order_queue, "send", down)
        yield


def limit(user: Caller, product: str, side: str, price: str, size: str, **extra: Any) -> str:
    body = {"product_id": product, "side": side, "price": price, "size": size, **extra}
    status, order = user.call("POST", "/orders", body)
    assert status == 200, order
    assert order["status"] == "pending"
    return str(order["id"])


def requested_at(flow: Flow, order_id: str) -> Any:
    return flow.order(order_id)["cancel_requested_at"]


def test_a_cancel_whose_publish_failed_is_recorded_and_the_sweeper_sends_it(
    make_user: Any, flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    user: Caller = make_user()
    user.fund("BTC", "1")
    ask = limit(user, "BTC-USD", "sell", "30000.00", "0.5")
    flow.run()
    assert flow.order(ask)["status"] == "open"

    with sqs_down(monkeypatch):
        assert user.call("DELETE", f"/orders/{ask}") == (200, ask)
        first = requested_at(flow, ask)
        assert first is not None
        # Asked again (the client retries): the same answer, the first request is kept.
        assert user.call("DELETE", f"/orders/{ask}") == (200, ask)
        assert requested_at(flow, ask) == first
    assert flow.in_flight() == 0  # nothing reached the queue
    assert flow.order(ask)["status"] == "open"
    assert flow.bal(user.user_id, "BTC") == Bal(units("0.5", "BTC"), units("0.5", "BTC"))
    # The API's order shape does not show the request (Coinbase's shape).
    status, shown = user.call("GET", f"/orders/{ask}")
    assert status == 200 and shown["status"] == "open" and "cancel_requested_at" not in shown
    assert "cancel_requested_at" not in user.call("GET", "/orders")[1][0]

    with flow.matcher(options=SWEEPING):
        wait_for(lambda: flow.order(ask)["status"] == "done", 15, "the sweeper did not cancel")
        flow.drain()
    order = flow.order(ask)
    assert (order["done_reason"], order["hold_amount"]) == ("canceled", 0)
    assert order["cancel_seq"] is not None  # taken off the book by the engine
    assert flow.bal(user.user_id, "BTC") == Bal(units("1", "BTC"), 0)
    assert user.call("DELETE", f"/orders/{ask}") == (400, {"message": "Order already done"})
    assert_checked(flow)


def test_a_pending_order_whose_order_and_cancel_were_lost_never_trades(
    make_user: Any, flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller = flow.user(BTC="1")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "1")
    flow.run()
    buyer: Caller = make_user()
    buyer.fund("USD", "100000")
    oid = str(uuid.uuid4())
    with sqs_down(monkeypatch):
        bid = limit(buyer, "BTC-USD", "buy", "30000.00", "0.1", client_oid=oid)
        assert buyer.call("DELETE", f"/orders/client:{oid}") == (200, bid)
    assert requested_at(flow, bid) is not None

    # The sweeper sends the cancel and not the order (whose owner asked to cancel it): the
    # cancel overtakes the order, which never reaches the book to take the resting ask.
    with flow.matcher(options=SWEEPING):
        wait_for(lambda: flow.order(bid)["status"] == "done", 15, "the sweeper did not cancel")
        flow.drain()
    order = flow.order(bid)
    assert (order["done_reason"], order["hold_amount"]) == ("canceled", 0)
    assert order["accepted_seq"] is None
    assert flow.trades("BTC-USD") == []
    assert flow.bal(buyer.user_id, "USD") == Bal(units("100000", "USD"), 0)
    assert_checked(flow)


def test_cancel_all_records_every_order_it_cancels_and_no_other(
    make_user: Any, flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    user: Caller = make_user()
    other: Caller = make_user()
    for u in (user, other):
        u.fund("BTC", "1")
        u.fund("ETH", "10")
    btc = [limit(user, "BTC-USD", "sell", p, "0.1") for p in ("30000.00", "30001.00")]
    eth = limit(user, "ETH-USD", "sell", "2000.00", "1")
    bystander = limit(other, "BTC-USD", "sell", "30002.00", "0.1")
    flow.run()
    done = limit(user, "BTC-USD", "sell", "30003.00", "0.1")
    assert user.call("DELETE", f"/orders/{done}") == (200, done)  # sent: the matcher cancels it
    flow.run()
    assert flow.order(done)["status"] == "done"

    with sqs_down(monkeypatch):
        status, ids = user.call("DELETE", "/orders?product_id=BTC-USD")
        assert status == 200 and sorted(ids) == sorted(btc)
        assert all(requested_at(flow, i) is not None for i in btc)
        assert requested_at(flow, eth) is None
        before = {i: requested_at(flow, i) for i in btc}
        status, ids = user.call("DELETE", "/orders")
        assert status == 200 and sorted(ids) == sorted([*btc, eth])
        assert requested_at(flow, eth) is not None
        assert {i: requested_at(flow, i) for i in btc} == before  # the first request is kept
    assert requested_at(flow, bystander) is None
    assert flow.in_flight() == 0

    with flow.matcher(options=SWEEPING):
        wait_for(
            lambda: all(flow.order(i)["status"] == "done" for i in [*btc, eth]),
            15,
            "the sweeper did not cancel them",
        )
        flow.drain()
    assert {flow.order(i)["done_reason"] for i in [*btc, eth]} == {"canceled"}
    assert flow.order(bystander)["status"] == "open"
    assert flow.bal(user.user_id, "BTC") == Bal(units("1", "BTC"), 0)
    assert flow.bal(user.user_id, "ETH") == Bal(units("10", "ETH"), 0)
    assert_checked(flow)


def test_a_sweep_resends_stale_orders_and_cancels_with_their_dedup_ids(flow: Flow) -> None:
    a, b = flow.user(BTC="1"), flow.user(BTC="1")
    lost_order = flow.place(a, "BTC-USD", "sell", "30000.00", "0.1", send=False)
    lost_cancel = flow.place(b, "BTC-USD", "sell", "30001.00", "0.1", send=False)
    fresh_cancel = flow.place(b, "BTC-USD", "sell", "30002.00", "0.1", send=False)
    done = flow.place(a, "BTC-USD", "sell", "30003.00", "0.1", send=False)
    flow.conn.execute(
        """UPDATE orders SET created_at = now() - interval '1 minute',
             cancel_requested_at = CASE id WHEN %s THEN now() - interval '30 seconds'
                                           WHEN %s THEN now() END
           WHERE id = ANY(%s::uuid[])""",
        (lost_cancel, fresh_cancel, [lost_order, lost_cancel, fresh_cancel, done]),
    )
    flow.conn.execute(
        """UPDATE orders SET status = 'done', done_reason = 'canceled', done_at = now(),
             hold_amount = 0, cancel_requested_at = now() - interval '30 seconds'
           WHERE id = %s""",
        (done,),
    )

    url = flow.urls["BTC-USD"]
    assert sweeper.sweep(flow.conn, flow.sqs, url, "BTC-USD", 5) == 2
    got: list[dict[str, Any]] = []
    for _ in range(20):
        if len(got) == 2:
            break
        got += flow.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
        ).get("Messages", [])
    sent = {(QueueMessage.parse(m["Body"]), m["Attributes"]["MessageDeduplicationId"]) for m in got}
    assert sent == {
        (QueueMessage("order", lost_order, "BTC-USD", a), lost_order),
        (QueueMessage("cancel", lost_cancel, "BTC-USD", b), f"cancel:{lost_cancel}"),
    }
