"""A randomized session (20 accounts, 3 products, 2,000 orders and cancels) and concurrent
spending from one balance, against a matcher running in-process on real services.

After each: every invariant of `exchange check` holds, and each product's trades are exactly
what a fresh engine makes from the same commands in the order they were sent.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict

from chalicelib.core import balances
from chalicelib.core.catalog import PRODUCTS
from chalicelib.messaging import order_queue
from chalicelib.messaging.order_queue import QueueMessage
from matcher.check import run_check
from matcher.options import Options
from tests.integration.orderflow import Flow, simulate, stored_trades

# product -> (mid price, price step, price steps either side, size unit, max units, funds)
MARKETS = {
    "BTC-USD": (30000, "0.50", 20, "0.0001", 100, "500.00"),
    "ETH-USD": (2000, "0.05", 20, "0.001", 100, "300.00"),
    "ETH-BTC": ("0.06667", "0.00001", 20, "0.01", 50, "0.0200"),
}


def _price(rng: random.Random, product_id: str) -> str:
    from decimal import Decimal

    mid, step, width, *_ = MARKETS[product_id]
    p = Decimal(str(mid)) + Decimal(step) * rng.randint(-width, width)
    places = -PRODUCTS[product_id].tick.as_tuple().exponent  # type: ignore[operator]
    return f"{p:.{places}f}"


def _size(rng: random.Random, product_id: str) -> str:
    from decimal import Decimal

    *_, unit, most, _funds = MARKETS[product_id]
    return str(Decimal(unit) * rng.randint(1, most))


def test_randomized_session_settles_and_replays(flow: Flow) -> None:
    rng = random.Random(20240605)
    users = [flow.user(USD="1000000", BTC="100", ETH="1000") for _ in range(20)]
    commands: dict[str, list[tuple[str, str]]] = defaultdict(list)
    live: dict[str, list[tuple[str, str]]] = defaultdict(list)  # user -> (product, order)
    outbox: dict[str, list[QueueMessage]] = defaultdict(list)
    refused = 0

    def flush(product_id: str) -> None:
        box = outbox[product_id]
        while box:
            chunk, box[:] = box[:10], box[10:]
            assert order_queue.send_batch(flow.sqs, flow.urls[product_id], chunk) == []

    with flow.matcher(options=Options(wait_s=1, poll_s=0.2)):
        for _ in range(2000):
            user = rng.choice(users)
            product_id = rng.choice(list(MARKETS))
            roll = rng.random()
            if roll < 0.15 and live[user]:
                pid, oid = live[user].pop(rng.randrange(len(live[user])))
                message = QueueMessage("cancel", oid, pid, user)
                commands[pid].append(("cancel", oid))
                outbox[pid].append(message)
                if len(outbox[pid]) >= 10:
                    flush(pid)
                continue
            side = rng.choice(("buy", "sell"))
            stp = rng.choice(("dc", "co", "cn", "cb"))
            try:
                if roll < 0.17:  # a market buy by size holds its whole balance: keep it rare
                    size = _size(rng, product_id)
                    oid = flow.place(user, product_id, "buy", size=size, stp=stp, send=False)
                elif roll < 0.25:  # market: a buy by funds, a sell by size
                    funds = MARKETS[product_id][5] if side == "buy" else None
                    size = None if side == "buy" else _size(rng, product_id)
                    oid = flow.place(
                        user, product_id, side, size=size, funds=funds, stp=stp, send=False
                    )
                else:
                    tif = rng.choices(("GTC", "IOC", "FOK"), (8, 1, 1))[0]
                    oid = flow.place(
                        user,
                        product_id,
                        side,
                        _price(rng, product_id),
                        _size(rng, product_id),
                        tif=tif,
                        post_only=tif == "GTC" and rng.random() < 0.1,
                        stp=stp,
                        send=False,
                    )
                    live[user].append((product_id, oid))
            except balances.InsufficientFunds:
                refused += 1
                continue
            commands[product_id].append(("order", oid))
            outbox[product_id].append(QueueMessage("order", oid, product_id, user))
            if len(outbox[product_id]) >= 10:
                flush(product_id)
        for product_id in MARKETS:
            flush(product_id)
        flow.drain(timeout=60)

    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()
    total_trades = 0
    for product_id, cmds in commands.items():
        expected = simulate(flow, product_id, cmds)
        assert stored_trades(flow, product_id) == expected, product_id
        total_trades += len(expected)
    assert total_trades > 200  # the scenario really trades
    counts = dict(
        flow.conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall()
    )
    assert counts.get("pending", 0) == 0 and counts.get("open", 0) > 0


def test_many_orders_against_one_balance_never_overdraw(flow: Flow) -> None:
    seller = flow.user(BTC="100")
    buyer = flow.user(USD="10000")
    for _ in range(20):
        flow.place(seller, "BTC-USD", "sell", "30000.00", "0.05")
    placed: list[str] = []
    refused = []
    lock = threading.Lock()

    def spend(worker: int) -> None:
        # Each thread its own connection, as concurrent API requests would have.
        mine = Flow(flow.cfg)
        try:
            for i in range(15):
                try:
                    if (worker + i) % 2:
                        oid = mine.place(buyer, "BTC-USD", "buy", funds="700.00")
                    else:
                        oid = mine.place(buyer, "BTC-USD", "buy", "30000.00", "0.02")
                    with lock:
                        placed.append(oid)
                except balances.InsufficientFunds:
                    with lock:
                        refused.append(i)
        finally:
            mine.close()

    with flow.matcher(["BTC-USD"], Options(wait_s=1, poll_s=0.2)):
        threads = [threading.Thread(target=spend, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        flow.drain(timeout=60)

    assert refused, "the balance should have run out"
    spent = flow.conn.execute(
        "SELECT sum(executed_value + fill_fees) FROM orders WHERE id = ANY(%s::uuid[])",
        (placed,),
    ).fetchone()
    assert spent is not None and 0 < spent[0] <= 10000 * 10**8
    b = flow.bal(buyer, "USD")
    assert b.available + b.hold == 10000 * 10**8 - int(spent[0])
    assert b.available >= 0 and b.hold >= 0
    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()
