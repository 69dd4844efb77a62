"""The API's SQS sends fit inside its Lambda: against an endpoint that accepts connections and
never answers, placing and cancelling still answer within the request's budget
(`API_SQS_BUDGET_S`, 1 s by default) with the order recorded and its funds held; the matcher's
sweeper sends what the API could not (tests/integration/test_cancel_requests.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from chalicelib.messaging import queues, sqs
from chalicelib.platform.config import ConfigError, Settings
from chalicelib.trading import orders
from tests.conftest import Caller

# The budget, plus what the request itself takes (auth, rate limit, one transaction).
ANSWERED_WITHIN_S = 2.0
HALF_BTC = 50_000_000  # in satoshis


@pytest.fixture
def silent_sqs() -> Iterator[str]:
    """The URL of a TCP server on 127.0.0.1 that accepts every connection and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        server.close()
        for conn in held:
            conn.close()


def _timed(user: Caller, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    started = time.monotonic()
    reply = user.call(method, path, body)
    assert time.monotonic() - started < ANSWERED_WITHIN_S, "the API waited on SQS past its budget"
    return reply


def _sell(user: Caller) -> dict[str, Any]:
    body = {"product_id": "BTC-USD", "side": "sell", "price": "30000.00", "size": "0.5"}
    status, order = _timed(user, "POST", "/orders", body)
    assert status == 200, order
    assert order["status"] == "pending"
    return dict(order)


def _held(settings: Settings, user: Caller, order_id: str) -> tuple[Any, ...]:
    """(order status, its hold, the account's BTC hold, cancel requested) from Postgres."""
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            """SELECT o.status, o.hold_amount, b.hold, o.cancel_requested_at IS NOT NULL
               FROM orders o JOIN balances b ON b.user_id = o.user_id AND b.asset = o.hold_asset
               WHERE o.id = %s AND o.user_id = %s""",
            (order_id, user.user_id),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_an_order_and_its_cancel_answer_within_the_budget_when_sqs_never_answers(
    make_user: Any, settings: Settings, silent_sqs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user: Caller = make_user()
    user.fund("BTC", "2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_sqs)

    # The queue's URL is not known for this endpoint yet: the lookup is what hangs.
    first = _sell(user)
    assert _held(settings, user, first["id"]) == ("pending", HALF_BTC, HALF_BTC, False)

    # The URL known (as in a warm Lambda): the send itself hangs.
    name = queues.queue_name(settings.queue_prefix, "BTC-USD")
    url = sqs.sqs_client(settings).get_queue_url(QueueName=name)["QueueUrl"]
    monkeypatch.setitem(orders._queue_urls, (silent_sqs, settings.queue_prefix, "BTC-USD"), url)
    second = _sell(user)
    assert _held(settings, user, second["id"]) == ("pending", HALF_BTC, 2 * HALF_BTC, False)

    assert _timed(user, "DELETE", f"/orders/{first['id']}") == (200, first["id"])
    assert _held(settings, user, first["id"]) == ("pending", HALF_BTC, 2 * HALF_BTC, True)

    # Cancelling several orders shares one budget among their sends.
    third = _sell(user)
    status, cancelled = _timed(user, "DELETE", "/orders")
    assert status == 200 and sorted(cancelled) == sorted([first["id"], second["id"], third["id"]])
    for order in (second, third):
        assert _held(settings, user, order["id"]) == ("pending", HALF_BTC, 3 * HALF_BTC, True)


def test_health_is_degraded_in_time_when_sqs_never_answers(
    api: Any, silent_sqs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_sqs)
    started = time.monotonic()
    reply = api.http.get("/health")
    assert time.monotonic() - started < ANSWERED_WITHIN_S
    assert (reply.status_code, json.loads(reply.body)) == (503, {"status": "degraded"})


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "6", "soon"])
def test_a_budget_that_does_not_fit_the_lambda_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(sqs.API_BUDGET_ENV, value)
    with pytest.raises(ConfigError, match=sqs.API_BUDGET_ENV):
        sqs.api_send_budget_s()


def test_the_budget_defaults_to_one_second_and_is_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(sqs.API_BUDGET_ENV, raising=False)
    assert sqs.api_send_budget_s() == 1.0
    monkeypatch.setenv(sqs.API_BUDGET_ENV, "0.25")
    assert sqs.api_send_budget_s() == 0.25
