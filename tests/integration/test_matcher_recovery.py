"""Redelivery, crashes, restarts, takeover and fencing: every order is processed exactly once.

Each test asserts on what Postgres holds (orders, trades, balances) against a pure engine run
over the same commands, and then on `exchange check`'s invariants.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chalicelib.messaging.order_queue import QueueMessage
from chalicelib.messaging.queues import queue_name
from matcher import books
from matcher.check import run_check
from matcher.options import Options
from matcher.ownership import LOCK_NAMESPACE, lock_key
from matcher.settlement import Fenced, Received, settle_batch
from tests.integration.orderflow import Bal, Flow, simulate, stored_trades, units

ROOT = Path(__file__).resolve().parents[2]


def assert_checked(flow: Flow) -> None:
    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()


def crossing_orders(flow: Flow, n: int, send: bool = True) -> list[tuple[str, str]]:
    """n orders on BTC-USD from two users that trade with each other, plus some cancels."""
    a = flow.user(BTC="10", USD="1000000")
    b = flow.user(BTC="10", USD="1000000")
    commands: list[tuple[str, str]] = []
    for i in range(n):
        user, side = (a, "sell") if i % 2 == 0 else (b, "buy")
        price = f"{30000 + (i * 7919) % 50}.00"
        oid = flow.place(user, "BTC-USD", side, price, f"0.0{1 + i % 9}", send=send)
        commands.append(("order", oid))
        if i % 5 == 4:
            commands.append(("cancel", commands[-3][1]))
            if send:
                flow.cancel(commands[-1][1], "BTC-USD")
    return commands


def short_visibility(flow: Flow, seconds: int = 2) -> None:
    """Messages a dead matcher received come back after `seconds` instead of 30."""
    flow.sqs.set_queue_attributes(
        QueueUrl=flow.urls["BTC-USD"], Attributes={"VisibilityTimeout": str(seconds)}
    )


def spawn_matcher(env: dict[str, str], **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "matcher", "--products", "BTC-USD", "--wait", "1"],
        cwd=ROOT,
        env=os.environ | env | extra,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def owner_pid(flow: Flow, product_id: str) -> int | None:
    row = flow.conn.execute(
        """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
             AND classid::int = %s AND objid::int = %s AND database =
             (SELECT oid FROM pg_database WHERE datname = current_database())""",
        (LOCK_NAMESPACE, lock_key(product_id)),
    ).fetchone()
    return None if row is None else int(row[0])


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def assert_exactly_once(flow: Flow, commands: list[tuple[str, str]]) -> None:
    assert stored_trades(flow, "BTC-USD") == simulate(flow, "BTC-USD", commands)
    pending = flow.conn.execute("SELECT count(*) FROM orders WHERE status = 'pending'").fetchone()
    assert pending == (0,)
    accepted = flow.conn.execute(
        "SELECT count(*), count(DISTINCT accepted_seq) FROM orders WHERE accepted_seq IS NOT NULL"
    ).fetchone()
    assert accepted == (len({o for k, o in commands if k == "order"}),) * 2
    assert_checked(flow)


def test_a_duplicate_message_is_ignored(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(seller, "BTC-USD", "sell", "30000.00", "1")
    bid = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.1")
    flow.run()
    before = (flow.bal(buyer, "USD"), flow.bal(seller, "BTC"), flow.order(bid))

    # The same order again, past SQS's deduplication (another dedup id): e.g. a sweeper
    # re-send more than five minutes after the first.
    flow.sqs.send_message(
        QueueUrl=flow.urls["BTC-USD"],
        MessageBody=QueueMessage("order", bid, "BTC-USD", buyer).body(),
        MessageGroupId=QueueMessage("order", bid, "BTC-USD", buyer).group_id,
        MessageDeduplicationId=f"again-{bid}",
    )
    flow.run()
    assert (flow.bal(buyer, "USD"), flow.bal(seller, "BTC"), flow.order(bid)) == before
    assert len(flow.trades("BTC-USD")) == 1
    assert_checked(flow)


def test_the_sweeper_resends_an_order_whose_publish_failed(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    ask = flow.place(seller, "BTC-USD", "sell", "30000.00", "1", send=False)
    flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.1")
    with flow.matcher(options=Options(wait_s=1, poll_s=0.2, sweep_every_s=0.2, sweep_after_s=1)):
        wait_for(lambda: flow.order(ask)["status"] == "open", 15, "the sweeper did not resend")
        flow.drain()
    # The bid rested first; the swept ask arrived later and took it.
    assert [t["taker_order_id"] for t in flow.trades("BTC-USD")] == [ask]
    assert flow.bal(seller, "BTC") == Bal(0, units("0.9", "BTC"))
    assert_checked(flow)


def test_a_restarted_matcher_rebuilds_the_book_with_its_priorities(flow: Flow) -> None:
    s1, s2 = flow.user(BTC="1"), flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    first = flow.place(s1, "BTC-USD", "sell", "30000.00", "0.1")
    second = flow.place(s2, "BTC-USD", "sell", "30000.00", "0.1")
    flow.place(s1, "BTC-USD", "sell", "30001.00", "0.1")
    flow.run()  # the book is now only in Postgres
    taker = flow.place(buyer, "BTC-USD", "buy", "30001.00", "0.15")
    flow.run()
    makers = [t["maker_order_id"] for t in flow.trades("BTC-USD")]
    assert makers == [first, second]  # time priority survived the restart
    assert flow.order(taker)["status"] == "done"
    assert_checked(flow)


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_kill_9_mid_batch_then_restart_processes_each_order_once(
    flow: Flow, matcher_env: dict[str, str], point: str
) -> None:
    short_visibility(flow)
    commands = crossing_orders(flow, 60)
    proc = spawn_matcher(matcher_env, MATCHER_FAULT=f"{point}:3")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    committed = flow.conn.execute("SELECT last_seq FROM product_state WHERE product_id = 'BTC-USD'")
    last_seq = committed.fetchone()
    assert last_seq is not None and last_seq[0] > 0  # two batches got through, then it died

    proc = spawn_matcher(matcher_env)  # the replacement, as ECS would start it
    try:
        flow.drain(timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0  # graceful: finishes its batch, exits 0
    assert_exactly_once(flow, commands)


def test_a_second_matcher_waits_and_takes_over_within_seconds(
    flow: Flow, matcher_env: dict[str, str]
) -> None:
    first = spawn_matcher(matcher_env)
    try:
        wait_for(lambda: owner_pid(flow, "BTC-USD") is not None, 30, "first never owned it")
        with flow.matcher(["BTC-USD"], Options(wait_s=1, poll_s=0.2)) as second:
            time.sleep(1.0)
            assert second.ownership.owned == set()  # it waits
            short_visibility(flow)
            commands = crossing_orders(flow, 20)
            first.kill()
            first.wait(timeout=10)
            killed = time.monotonic()
            wait_for(lambda: "BTC-USD" in second.ownership.owned, 10, "no takeover")
            assert time.monotonic() - killed < 5
            flow.drain(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert_exactly_once(flow, commands)


def test_fencing_a_stale_matcher_cannot_write_and_redoes_from_postgres(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    ask = flow.place(seller, "BTC-USD", "sell", "30000.00", "0.5", send=False)
    bid = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.2", send=False)
    batch = [
        Received("m1", QueueMessage("order", ask, "BTC-USD", seller)),
        Received("m2", QueueMessage("order", bid, "BTC-USD", buyer)),
    ]
    with (
        psycopg.connect(flow.cfg.database_url, autocommit=True) as old,
        psycopg.connect(flow.cfg.database_url, autocommit=True) as new,
    ):
        stale = books.load(old, "BTC-USD")  # a matcher that then stalls (GC pause, partition)
        current = books.load(new, "BTC-USD")  # the one that took over meanwhile
        settle_batch(new, current, batch[:1])
        with pytest.raises(Fenced):
            settle_batch(old, stale, batch)
        # Nothing of the stale attempt was written; the redo on a reloaded book skips the
        # order already processed and settles the other.
        assert flow.trades("BTC-USD") == []
        assert flow.order(bid)["status"] == "pending"
        result = settle_batch(old, books.load(old, "BTC-USD"), batch)
        assert (result.skipped, result.applied) == (["m1"], ["m2"])
    assert [t["size"] for t in flow.trades("BTC-USD")] == [units("0.2", "BTC")]
    assert flow.order(ask)["seq"] == 1
    assert_checked(flow)


def test_poison_messages_go_to_the_dead_letter_queue_and_the_rest_proceeds(flow: Flow) -> None:
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    url = flow.urls["BTC-USD"]
    for n, body in enumerate(["not json", '{"type":"order","order_id":"nope"}']):
        flow.sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId="BTC-USD", MessageDeduplicationId=str(n)
        )
    flow.place(seller, "BTC-USD", "sell", "30000.00", "0.5")
    bid = flow.place(buyer, "BTC-USD", "buy", "30000.00", "0.2")
    dlq = flow.sqs.get_queue_url(QueueName=queue_name(flow.cfg.queue_prefix, "BTC-USD", dlq=True))
    with flow.matcher(["BTC-USD"]):
        wait_for(lambda: flow.order(bid)["status"] == "done", 30, "the batch did not proceed")
        flow.drain(timeout=30)
    got = flow.sqs.receive_message(QueueUrl=dlq["QueueUrl"], MaxNumberOfMessages=10)
    assert sorted(m["Body"] for m in got.get("Messages", [])) == sorted(
        ['{"type":"order","order_id":"nope"}', "not json"]
    )
    assert_checked(flow)
