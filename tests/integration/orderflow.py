"""The API's half of the order path, done directly in SQL, for the matcher's tests.

`Flow.place` does exactly what `POST /orders` does once a request is valid: one transaction that
holds the funds (chalicelib.core.balances.place_hold) and inserts the order as pending, then one
SendMessage to the product's queue; `Flow.cancel` sends the cancel message. It also runs the
matcher in-process (a thread) and waits for it to drain the queues.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from chalicelib.core import balances
from chalicelib.core.catalog import ASSETS, FEE_ACCOUNTS, PRODUCTS
from chalicelib.core.money import to_units
from chalicelib.messaging import order_queue
from chalicelib.messaging.order_queue import QueueMessage
from chalicelib.messaging.sqs import sqs_client
from chalicelib.platform.config import Settings
from chalicelib.platform.db import write_checks
from matcher.check import run_check
from matcher.coordinator import Matcher
from matcher.faults import Faults
from matcher.options import Options


@dataclass(frozen=True)
class Bal:
    available: int
    hold: int


class Flow:
    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.conn = psycopg.connect(cfg.database_url, autocommit=True)
        self.sqs = sqs_client(cfg)
        self.urls = {p: order_queue.queue_url(self.sqs, cfg, p) for p in PRODUCTS}
        self.running: Matcher | None = None

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ accounts

    def user(self, group: int | None = None, **funds: str) -> str:
        """A user with deposits of the given decimal amounts, e.g. user(USD="1000", BTC="1");
        with `group`, one whose messages travel in that message group of every product."""
        user_id = str(uuid.uuid4())
        if group is not None:
            # The group is the id's low bits (order_queue.group_id); the version bits stay.
            n = order_queue.GROUPS_PER_PRODUCT
            user_id = str(uuid.UUID(int=uuid.UUID(user_id).int // n * n + group))
            assert order_queue.group_id("P", user_id) == f"P.{group}"  # the mapping's own word
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, 'x')",
                (user_id, f"{user_id}@example.com"),
            )
            balances.open_accounts(self.conn, user_id)
            for asset, amount in funds.items():
                units = to_units(Decimal(amount), ASSETS[asset].exponent)
                deposit_id = str(uuid.uuid4())
                self.conn.execute(
                    """INSERT INTO deposits (id, user_id, asset, amount, address, status,
                         completed_at) VALUES (%s, %s, %s, %s, 'test', 'completed', now())""",
                    (deposit_id, user_id, asset, units),
                )
                balances.credit(
                    self.conn,
                    user_id,
                    asset,
                    units,
                    "transfer",
                    balances.LedgerRef(transfer_id=deposit_id),
                )
        return user_id

    def bal(self, user_id: str, asset: str) -> Bal:
        row = self.conn.execute(
            "SELECT available, hold FROM balances WHERE user_id = %s AND asset = %s",
            (user_id, asset),
        ).fetchone()
        assert row is not None
        return Bal(int(row[0]), int(row[1]))

    def fees(self, asset: str) -> int:
        """What every product's fee account holds of `asset`."""
        return sum(
            self.bal(account, asset).available
            for product_id, account in FEE_ACCOUNTS.items()
            if asset in (PRODUCTS[product_id].base.id, PRODUCTS[product_id].quote.id)
        )

    # ------------------------------------------------------------------ orders

    def place(
        self,
        user_id: str,
        product_id: str,
        side: str,
        price: str | None = None,
        size: str | None = None,
        funds: str | None = None,
        *,
        tif: str = "GTC",
        post_only: bool = False,
        stp: str = "dc",
        send: bool = True,
    ) -> str:
        """Place like the API: hold, insert pending, commit, send. Amounts are decimal strings.
        Raises balances.InsufficientFunds when the hold does not fit."""
        p = PRODUCTS[product_id]
        kind = "limit" if price is not None else "market"
        price_u = None if price is None else to_units(Decimal(price), p.quote.exponent)
        size_u = None if size is None else to_units(Decimal(size), p.base.exponent)
        funds_u = None if funds is None else to_units(Decimal(funds), p.quote.exponent)
        order_id = str(uuid.uuid4())
        with self.conn.transaction():
            if side == "sell":
                assert size_u is not None
                asset, amount = p.base.id, size_u
            elif kind == "limit":
                assert price_u is not None and size_u is not None
                amount = p.limit_buy_hold(
                    price_u // p.quote_units_per_tick, size_u // p.base_units_per_lot
                )
                asset = p.quote.id
            else:
                asset = p.quote.id
                if funds_u is None:  # market buy by size: its budget is the whole balance
                    funds_u = self.bal(user_id, asset).available
                    if funds_u <= 0:
                        raise balances.InsufficientFunds(asset)
                amount = funds_u
            balances.place_hold(self.conn, user_id, asset, amount)
            self.conn.execute(
                """INSERT INTO orders (id, user_id, product_id, side, type, price, size, funds,
                     time_in_force, post_only, stp, hold_asset, hold_amount)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    order_id,
                    user_id,
                    product_id,
                    side,
                    kind,
                    price_u,
                    size_u,
                    funds_u,
                    tif,
                    post_only,
                    stp,
                    asset,
                    amount,
                ),
            )
        if send:
            self.send(QueueMessage("order", order_id, product_id, user_id))
        return order_id

    def cancel(self, order_id: str, product_id: str) -> None:
        owner = self.order(order_id)["user_id"]
        self.send(QueueMessage("cancel", order_id, product_id, owner))

    def send(self, message: QueueMessage) -> None:
        order_queue.send(self.sqs, self.urls[message.product_id], message)

    def order(self, order_id: str) -> dict[str, Any]:
        cur = self.conn.execute("SELECT * FROM orders WHERE id = %s", (order_id,))
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return {d.name: _plain(v) for d, v in zip(cur.description, row, strict=True)}

    def trades(self, product_id: str) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT * FROM trades WHERE product_id = %s ORDER BY trade_id", (product_id,)
        )
        assert cur.description is not None
        names = [d.name for d in cur.description]
        return [{n: _plain(v) for n, v in zip(names, r, strict=True)} for r in cur.fetchall()]

    # ------------------------------------------------------------------ the matcher

    def in_flight(self) -> int:
        total = 0
        for url in self.urls.values():
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            total += int(attrs["ApproximateNumberOfMessages"])
            total += int(attrs["ApproximateNumberOfMessagesNotVisible"])
        return total

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queue is empty (each message settled and deleted)."""
        deadline = time.monotonic() + timeout
        while self.in_flight():
            running = self.running
            if running is not None and running.stopping.is_set():
                raise RuntimeError(f"the matcher stopped: {running.error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.in_flight()} messages still in the queues")
            time.sleep(0.05)

    @contextmanager
    def matcher(
        self, products: list[str] | None = None, options: Options | None = None
    ) -> Iterator[Matcher]:
        """A matcher running in a thread of this process for the block."""
        m = Matcher(self.cfg, products, options or Options(wait_s=1, poll_s=0.2), Faults(None))
        t = threading.Thread(target=m.run, daemon=True)
        t.start()
        self.running = m
        try:
            yield m
        finally:
            self.running = None
            m.stop()
            t.join(timeout=30)
            assert not t.is_alive(), "the matcher did not stop"
        assert m.error is None, m.error

    def run(self, timeout: float = 30.0, products: list[str] | None = None) -> None:
        """Start a matcher, drain every queue, stop it."""
        with self.matcher(products):
            self.drain(timeout)


def _plain(v: Any) -> Any:
    """Postgres values as the tests compare them: NUMERIC as int, uuid as str."""
    if isinstance(v, Decimal):
        return int(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    return v


def units(amount: str, asset: str) -> int:
    return to_units(Decimal(amount), ASSETS[asset].exponent)


def write_moves(conn: psycopg.Connection, moves: list[balances.Move]) -> None:
    """Run the parts of `balances.moves_sql` as a statement of their own, the way the matcher's
    batch statement runs them (its WITH items, its check in the select list); an overdraft
    raises InsufficientFunds."""
    parts = balances.moves_sql(moves)
    assert parts is not None
    with write_checks(balances.FUNDS_CHECK):
        conn.execute(f"WITH {parts.ctes} SELECT {parts.check}", parts.params)


def simulate(flow: Flow, product_id: str, commands: list[tuple[str, str]]) -> list[tuple]:
    """The trades a fresh engine makes from these ("order"|"cancel", order id) commands, given in
    the order they were sent, as (maker id, taker id, price units, size units): what a matcher
    that processed each message exactly once must have written.

    Accounts' messages travel in separate message groups, so the matcher may take two accounts'
    commands in another order than they were sent; it records its order (accepted_seq and
    cancel_seq). This asserts that each account's commands kept their order, then replays
    every command in the matcher's order (a cancel that found nothing to cancel has no seq and
    changed nothing)."""
    from chalicelib.core.order_rows import ORDER_COLUMNS, order_row
    from matcher.books import OrderState, Rules
    from matcher.engine import Fill

    rules = Rules.of(product_id)
    ids = list({oid for _, oid in commands})
    rows = (
        flow.conn.cursor(row_factory=order_row)
        .execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ANY(%s::uuid[])", (ids,))
        .fetchall()
    )
    placed = {o.id: o for o in (OrderState.from_row(r, rules) for r in rows)}
    seqs = {
        str(r[0]): (str(r[1]), r[2], r[3])
        for r in flow.conn.execute(
            """SELECT id, user_id, accepted_seq, cancel_seq FROM orders
               WHERE id = ANY(%s::uuid[])""",
            (ids,),
        )
    }
    sequenced: list[tuple[int, str, str]] = []
    last_seq: dict[str, int] = {}
    for kind, oid in dict.fromkeys(commands):
        user, accepted, canceled = seqs[oid]
        seq = accepted if kind == "order" else canceled
        if seq is None:
            continue
        assert seq > last_seq.get(user, 0), f"{user}'s {kind} {oid} was taken out of order"
        last_seq[user] = seq
        sequenced.append((seq, kind, oid))
    book = rules.new_book()
    out = []
    for _, kind, oid in sorted(sequenced):
        events = book.submit(placed[oid].command()) if kind == "order" else book.cancel(oid)
        out.extend(
            (str(e.maker_id), str(e.taker_id), e.price * rules.tick, e.size * rules.lot)
            for e in events
            if type(e) is Fill
        )
    return out


def stored_trades(flow: Flow, product_id: str) -> list[tuple]:
    return [
        (t["maker_order_id"], t["taker_order_id"], t["price"], t["size"])
        for t in flow.trades(product_id)
    ]


@dataclass(frozen=True)
class Settled:
    """One BTC-USD trade settled through the matcher, with `exchange check` passing."""

    seller: str  # the maker: its ask rested first
    buyer: str  # the taker
    trade: dict[str, Any]


def settled_trade(flow: Flow, product_id: str = "BTC-USD") -> Settled:
    """A seller's ask of 0.5 BTC at 30,000 crossed by a buy of 0.2: one trade, checked clean."""
    seller = flow.user(BTC="1")
    buyer = flow.user(USD="100000")
    flow.place(seller, product_id, "sell", "30000.00", "0.5")
    flow.place(buyer, product_id, "buy", "30000.00", "0.2")
    flow.run()
    (trade,) = flow.trades(product_id)
    assert flow.order(trade["maker_order_id"])["user_id"] == seller
    report = run_check(flow.cfg.database_url)
    assert report.ok, report.text()
    return Settled(seller, buyer, trade)
