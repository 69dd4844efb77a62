"""The matcher's pipeline per product (receive -> settle -> post) on real SQS and Postgres:
it receives while it settles, may merge waiting batches into one transaction, and still settles
every message exactly once with each account's messages in the order they were sent."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from chalicelib.messaging import order_queue
from chalicelib.messaging.order_queue import QueueMessage
from matcher import pipeline
from matcher.check import run_check
from matcher.coordinator import Matcher
from matcher.faults import Faults
from matcher.options import Options
from tests.integration.orderflow import Flow, simulate, stored_trades

PID = "BTC-USD"


def _backlog(flow: Flow, n: int, seed: int) -> list[tuple[str, str]]:
    """n crossing orders (and a cancel every fifth) from 12 accounts, all sent before any
    matcher runs: a backlog spread over the product's message groups."""
    rng = random.Random(seed)
    # One group each, so the seed alone decides how the backlog spreads over the groups.
    users = [flow.user(group=g, BTC="10", USD="1000000") for g in range(12)]
    commands: list[tuple[str, str]] = []
    mine: dict[str, list[str]] = {u: [] for u in users}
    outbox: list[QueueMessage] = []
    for i in range(n):
        user = rng.choice(users)
        if i % 5 == 4 and mine[user]:
            oid = mine[user].pop(0)
            commands.append(("cancel", oid))
            outbox.append(QueueMessage("cancel", oid, PID, user))
            continue
        side = rng.choice(("buy", "sell"))
        price = f"{30000 + rng.randint(-3, 3)}.00"
        oid = flow.place(user, PID, side, price, f"0.0{rng.randint(1, 9)}", send=False)
        mine[user].append(oid)
        commands.append(("order", oid))
        outbox.append(QueueMessage("order", oid, PID, user))
    for i in range(0, len(outbox), 10):
        assert order_queue.send_batch(flow.sqs, flow.urls[PID], outbox[i : i + 10]) == []
    assert len({m.group_id for m in outbox}) > 4  # really spread over several groups
    return commands


def _assert_exactly_once(flow: Flow, commands: list[tuple[str, str]]) -> None:
    # simulate() also asserts that every account's commands were taken in the order sent.
    assert stored_trades(flow, PID) == simulate(flow, PID, commands)
    pending = flow.conn.execute("SELECT count(*) FROM orders WHERE status = 'pending'")
    assert pending.fetchone() == (0,)
    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()


def test_the_next_batch_is_received_while_one_settles(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = _backlog(flow, 60, seed=1)
    waiting: list[int] = []  # received batches waiting when the settler starts a batch
    real = pipeline.settle_batch

    def slow_settle(*args: Any) -> Any:
        worker = next(iter(flow.running.workers.values())) if flow.running else None
        if worker is not None:
            waiting.append(worker._inbox.qsize())
        time.sleep(0.15)  # a slow database: the receiver must not wait for it
        return real(*args)

    monkeypatch.setattr(pipeline, "settle_batch", slow_settle)
    with flow.matcher([PID], Options(wait_s=1, poll_s=0.2, prefetch=2, merge=1)):
        flow.drain(timeout=60)
    # Received one after another, the inbox would be empty whenever a batch starts.
    assert max(waiting) >= 1, waiting
    assert max(waiting) <= 2  # bounded by prefetch
    _assert_exactly_once(flow, commands)


def test_waiting_batches_merge_into_one_transaction(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = _backlog(flow, 150, seed=2)
    real = pipeline.settle_batch

    def slow_settle(*args: Any) -> Any:
        time.sleep(0.1)  # long enough for batches to queue up behind it
        return real(*args)

    monkeypatch.setattr(pipeline, "settle_batch", slow_settle)
    options = Options(wait_s=1, poll_s=0.2, prefetch=3, merge=3, record_timings=True)
    with flow.matcher([PID], options) as m:
        flow.drain(timeout=60)
        cycles = [c for s in m.all_stats().values() for c in s.cycles]
    assert sum(c.messages for c in cycles) == len(set(commands))
    sizes = [c.messages for c in cycles]
    assert max(sizes) > 10, sizes  # several received batches in one transaction
    assert max(sizes) <= 30, sizes  # never more than `merge` of them
    _assert_exactly_once(flow, commands)


def test_a_failed_settle_stops_the_worker_and_nothing_is_deleted(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = _backlog(flow, 20, seed=3)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    real = pipeline.settle_batch
    monkeypatch.setattr(pipeline, "settle_batch", broken)
    m = Matcher(flow.cfg, [PID], Options(wait_s=1, poll_s=0.2), Faults(None))
    assert m.run() == 1  # the worker's failure stops the process with an error
    assert isinstance(m.error, RuntimeError)
    # Every message is still on the queue (released at once, not after the visibility
    # timeout) for the next owner, which settles them all.
    monkeypatch.setattr(pipeline, "settle_batch", real)
    with flow.matcher([PID]):
        flow.drain(timeout=10)  # well under the 30 s visibility timeout
    _assert_exactly_once(flow, commands)


def test_an_order_settled_after_its_copy_was_prefetched_is_not_settled_twice(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader loads a batch's orders while earlier batches settle. A copy of an order in
    another message group (a resend under another group mapping) is prefetched as pending while
    the original settles; the settler must see the order as it left it, not as prefetched."""
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    ask = flow.place(seller, PID, "sell", "30000.00", "0.5", send=False)
    bid = flow.place(buyer, PID, "buy", "30000.00", "0.2", send=False)
    url = flow.urls[PID]

    def send(group: str, dedup: str) -> None:
        # The copy of the bid first: it is what the first batch of group B must hold.
        pairs = ((ask, seller), (bid, buyer)) if group == "A" else ((bid, buyer), (ask, seller))
        for oid, user in pairs:
            flow.sqs.send_message(
                QueueUrl=url,
                MessageBody=QueueMessage("order", oid, PID, user).body(),
                MessageGroupId=f"{PID}.{group}",
                MessageDeduplicationId=f"{dedup}{oid}",
            )

    send("A", "")
    real = pipeline.settle_batch
    prefetched: list[bool] = []

    def slow_settle(*args: Any) -> Any:
        prefetched.append(args[4] is not None)
        if len(prefetched) == 1:
            send("B", "copy-")  # received and prefetched while this batch settles
            time.sleep(0.8)
        return real(*args)

    monkeypatch.setattr(pipeline, "settle_batch", slow_settle)
    with flow.matcher([PID], Options(wait_s=1, poll_s=0.2, prefetch=2)) as m:
        flow.drain(timeout=30)
        retries = sum(s.retries for s in m.all_stats().values())
    assert all(prefetched) and len(prefetched) >= 2
    # Seen as settled at once: not submitted again, caught by the write's check and redone.
    assert retries == 0
    trades = stored_trades(flow, PID)
    assert len(trades) == 1  # one match of 0.2, not two
    assert flow.order(bid)["status"] == "done" and flow.order(ask)["status"] == "open"
    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()
