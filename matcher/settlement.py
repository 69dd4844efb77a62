"""The unit of work of the matcher: one SQS batch -> engine events -> ONE Postgres transaction.

`settle_batch` runs a batch of queue messages through a product's book and writes everything
they caused in one transaction: order rows, trades (consecutive trade ids), balance moves with
their ledger rows (chalicelib.core.balances.moves_sql), and the product's fence. The transaction
starts with the fence itself: `UPDATE product_state ... WHERE last_seq = <the book's seq before
the batch>` both locks the row and proves nobody else wrote this product since we loaded it.
If it matches no row, the transaction aborts, `Fenced` is raised and the caller reloads the
book and redoes the batch. The batch is ONE statement, so its writes and its commit take one
round trip (`_write`).

Any error leaves the in-memory book ahead of Postgres, so callers must reload it (books.load)
after an exception; nothing here is swallowed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from chalicelib.core.balances import FUNDS_CHECK, InsufficientFunds, LedgerRef, Move, moves_sql
from chalicelib.core.catalog import fee_account
from chalicelib.core.order_rows import ORDER_COLUMNS, order_row
from chalicelib.messaging.order_queue import QueueMessage
from chalicelib.platform.db import array_text, write_checks
from matcher.batch_sql import Trade, batch_statement
from matcher.books import LoadedBook, OrderState, Rules
from matcher.engine import BUY, LIMIT, SELL, CancelRejected, Changed, Done, Fill, Opened


class Fenced(Exception):
    """product_state.last_seq moved under us: another matcher wrote this product."""


class Conflict(Exception):
    """An order row was not in the state the batch expected (written by someone else)."""


# The batch write's checks, failed on the server (db.write_checks).
_CHECKS: dict[str, type[Exception]] = {**FUNDS_CHECK, "EX002": Fenced, "EX003": Conflict}


class Submitted(NamedTuple):
    """Market data's marker: this order reached the engine (Coinbase's `received`); the
    engine's events for it follow in `BatchResult.events`."""

    seq: int  # the sequence of its first event
    order: OrderState


class PendingCancelled(NamedTuple):
    """Market data's marker: a cancel overtook its order, which never reached the engine."""

    seq: int  # the book's sequence at the time (unchanged: the engine saw nothing)
    order: OrderState


@dataclass(slots=True)
class BatchResult:
    product_id: str
    seq_before: int
    seq_after: int
    trades: list[Trade] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # message ids acted on
    skipped: list[str] = field(default_factory=list)  # redeliveries and moot cancels
    poison: list[str] = field(default_factory=list)  # message ids left for the DLQ
    timings: dict[str, float] = field(default_factory=dict)
    # For market data: every engine event of the batch in order, with Submitted and
    # PendingCancelled markers; and the commit's time (trades.created_at), None if no write.
    events: list[Any] = field(default_factory=list)
    time: datetime | None = None
    changed: list[OrderState] = field(default_factory=list)  # the order rows it wrote


@dataclass(frozen=True, slots=True)
class Received:
    """One message of a batch: SQS's id for it and what it says (None when it is poison)."""

    message_id: str
    message: QueueMessage | None


def parse_order_id(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


class _Batch:
    """Builds the writes of one batch while the engine runs."""

    def __init__(self, loaded: LoadedBook, rows: dict[str, OrderState]) -> None:
        self.loaded = loaded
        self.rules = loaded.rules
        self.rows = rows  # the batch's own orders as read from Postgres
        self.touched: dict[str, OrderState] = {}
        self.moves: list[Move] = []
        self.trades: list[Trade] = []
        self.next_trade_id = loaded.last_trade_id + 1
        self.events: list[Any] = []  # what market data publishes, in order
        self.fee_account = fee_account(loaded.rules.product.id)

    def state(self, order_id: str) -> OrderState | None:
        """The batch's view of an order: as the batch left it, else as the book or Postgres
        has it. Returned states are copies owned by the batch (the cache changes on commit)."""
        found = self.touched.get(order_id)
        if found is not None:
            return found
        base = self.loaded.live.get(order_id) or self.rows.get(order_id)
        if base is None:
            return None
        mine = base.copy()
        self.touched[order_id] = mine
        return mine

    def _must(self, order_id: Any) -> OrderState:
        found = self.state(str(order_id))
        if found is None:
            raise LookupError(f"engine event for an order the matcher does not know: {order_id}")
        return found

    # ------------------------------------------------------------------ events -> writes

    def apply(self, events: list[Any]) -> None:
        self.events += events
        for e in events:
            kind = type(e)
            if kind is Fill:
                self._fill(e)
            elif kind is Opened:
                o = self._must(e.order_id)
                o.status, o.seq, o.open_lots = "open", e.seq, e.size
            elif kind is Changed:
                self._changed(e)
            elif kind is Done:
                self._done(e)
            elif kind is not CancelRejected:
                raise TypeError(f"unknown engine event {e!r}")

    def _fill(self, f: Fill) -> None:
        rules = self.rules
        size_units = f.size * rules.lot
        price_units = f.price * rules.tick
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        maker_side = SELL if f.taker_side == BUY else BUY
        self.trades.append(
            Trade(
                trade_id,
                f.seq,
                str(f.maker_id),
                str(f.taker_id),
                maker_side,
                price_units,
                size_units,
                f.notional,
                f.maker_fee,
                f.taker_fee,
            )
        )
        self._party(self._must(f.maker_id), f, size_units, f.maker_fee, trade_id)
        self._party(self._must(f.taker_id), f, size_units, f.taker_fee, trade_id)

    def _party(self, o: OrderState, f: Fill, size_units: int, fee: int, trade_id: int) -> None:
        product = self.rules.product
        base, quote = product.base.id, product.quote.id
        ref = LedgerRef(order_id=o.id, product_id=product.id, trade_id=trade_id)
        add = self.moves.append
        o.filled_size += size_units
        o.executed_value += f.notional
        o.fill_fees += fee
        if o.open_lots is not None:
            o.open_lots -= f.size
        if o.side == BUY:
            spent = f.notional + fee
            add(Move(o.user_id, quote, 0, -f.notional, "match", ref))
            if fee:
                add(Move(o.user_id, quote, 0, -fee, "fee", ref))
            add(Move(o.user_id, base, size_units, 0, "match", ref))
        else:
            spent = size_units
            add(Move(o.user_id, base, 0, -size_units, "match", ref))
            add(Move(o.user_id, quote, f.notional, 0, "match", ref))
            if fee:
                add(Move(o.user_id, quote, -fee, 0, "fee", ref))
        if fee:
            add(Move(self.fee_account, quote, fee, 0, "fee", ref))
        # A limit order keeps exactly what its open lots can still spend; a market order keeps
        # the rest of its budget until its Done releases it.
        if o.type == LIMIT:
            assert o.open_lots is not None
            new_hold = self.rules.live_hold(o.side, o.price_ticks, o.open_lots)
        else:
            new_hold = o.hold_amount - spent
        self._set_hold(o, new_hold + spent)
        o.hold_amount -= spent

    def _changed(self, c: Changed) -> None:
        o = self._must(c.order_id)
        removed = c.old_size - c.new_size
        o.stp_size += removed * self.rules.lot
        o.open_lots = c.new_size
        if o.type == LIMIT:
            self._set_hold(o, self.rules.live_hold(o.side, o.price_ticks, c.new_size))
        elif o.side == SELL:
            self._set_hold(o, o.hold_amount - removed * self.rules.lot)
        # A market buy's budget is funds, not size: what it did not spend goes back at Done.

    def _done(self, d: Done) -> None:
        o = self._must(d.order_id)
        if d.reason == "rejected":
            o.status, o.done_reason, o.reject_reason = "rejected", "rejected", d.message
        else:
            o.status, o.done_reason = "done", d.reason
        self._set_hold(o, 0)

    def _set_hold(self, o: OrderState, new_hold: int) -> None:
        """Release the hold down to `new_hold` (never up: a hold only grows at placement)."""
        release = o.hold_amount - new_hold
        if release < 0:
            raise AssertionError(f"order {o.id} would need {-release} more held than it has")
        if release:
            self.moves.append(Move(o.user_id, o.hold_asset, release, -release))
            o.hold_amount = new_hold

    def cancel_pending(self, o: OrderState) -> None:
        """A cancel that overtook its order (its order message never came, e.g. the publish
        failed): the order never reaches the engine, it is just done with its hold released."""
        o.status, o.done_reason = "done", "canceled"
        self._set_hold(o, 0)
        self.events.append(PendingCancelled(self.loaded.book.seq, o))


def key_lookups_only(conn: psycopg.Connection) -> None:
    """Set up a connection that will run this module's statements: plans that find rows by key.

    Every statement here touches a batch's rows by key (about 10 orders, 20 balances), so an
    index plan is right at any table size. But the planner caches a statement's generic plan
    with the table as it was then: a plan made while `orders` was small (a new database, a
    benchmark's) scans the whole table for every batch long after it has grown.
    `enable_seqscan = off` only makes a scan the last resort; the order rows' statement also
    keeps the planner off the partial index of live orders (`batch_sql._ORDERS_CTE`)."""
    conn.execute("SET enable_seqscan = off")


def load_orders(
    conn: psycopg.Connection, rules: Rules, order_ids: list[str]
) -> dict[str, OrderState]:
    """The named orders of the rules' product as Postgres has them (others are left out: their
    messages are poison on this product's queue)."""
    if not order_ids:
        return {}
    rows = (
        conn.cursor(row_factory=order_row)
        .execute(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ANY(%s::uuid[])",
            (array_text(order_ids),),
        )
        .fetchall()
    )
    found = {}
    for row in rows:
        if row.product_id != rules.product.id:
            continue  # another product's order: its message is poison on this queue
        o = OrderState.from_row(row, rules)
        found[o.id] = o
    return found


def settle_batch(
    conn: psycopg.Connection,
    loaded: LoadedBook,
    batch: list[Received],
    before_commit: Callable[[], None] | None = None,
    rows: dict[str, OrderState] | None = None,
) -> BatchResult:
    """Match and settle one batch. `conn` is in autocommit mode; this opens the transaction.

    `rows`: the batch's orders if the caller loaded them already (`load_orders`), as they are
    now: the caller must have replaced any that a batch committed since has changed."""
    t0 = time.perf_counter()
    book = loaded.book
    product_id = loaded.rules.product.id
    result = BatchResult(product_id, book.seq, book.seq)
    if rows is None:
        wanted = [r.message.order_id for r in batch if r.message is not None]
        rows = load_orders(conn, loaded.rules, wanted)
    t1 = time.perf_counter()

    work = _Batch(loaded, rows)
    for r in batch:
        m = r.message
        if m is None or m.product_id != product_id or m.order_id not in rows:
            result.poison.append(r.message_id)
            continue
        o = work.state(m.order_id)
        assert o is not None
        if m.kind == "order":
            if o.status != "pending":
                result.skipped.append(r.message_id)  # a redelivery: already processed
                continue
            o.accepted_seq = book.seq + 1
            work.events.append(Submitted(o.accepted_seq, o))
            work.apply(book.submit(o.command()))
        elif m.order_id in book:
            events = book.cancel(m.order_id)
            o.cancel_seq = events[-1].seq
            work.apply(events)
        elif o.status == "pending":
            work.cancel_pending(o)
        else:
            result.skipped.append(r.message_id)  # already done: nothing to cancel
            continue
        result.applied.append(r.message_id)
    result.seq_after = book.seq
    result.trades = work.trades
    result.events = work.events
    t2 = time.perf_counter()

    changed = [o for o in work.touched.values() if _differs(o, loaded, rows)]
    if changed or result.seq_after != result.seq_before:
        _write(conn, loaded, work, changed, result, before_commit)
    t3 = time.perf_counter()

    # Committed: the cache follows Postgres.
    for o in changed:
        if o.status == "open":
            loaded.live[o.id] = o
        else:
            loaded.live.pop(o.id, None)
    loaded.last_trade_id = work.next_trade_id - 1
    result.changed = changed
    result.timings.update(load=t1 - t0, match=t2 - t1, write=t3 - t2)
    return result


def _differs(o: OrderState, loaded: LoadedBook, rows: dict[str, OrderState]) -> bool:
    before = loaded.live.get(o.id) or rows.get(o.id)
    return before is None or before != o


def _write(
    conn: psycopg.Connection,
    loaded: LoadedBook,
    work: _Batch,
    changed: list[OrderState],
    result: BatchResult,
    before_commit: Callable[[], None] | None,
) -> None:
    """The whole batch as ONE statement (`batch_sql.batch_statement`) in autocommit: its own
    transaction, sent to the server in one write and committed there if it succeeds, so it can
    never commit in part. Its checks abort it on the server (`write_check`, migration 0006):
    the fence (EX002 -> Fenced), every changed order still live (EX003 -> Conflict) and every
    balance still >= 0 (EX001 -> InsufficientFunds).

    Why one statement rather than one per table in psycopg's pipeline mode (one round trip
    too): psycopg flushes each statement of a pipeline to the socket as it is queued, and
    every send on loopback wakes the server, at a cost in the matcher's CPU under the GIL; one
    statement is one send."""
    product_id = loaded.rules.product.id
    t = time.perf_counter()
    sql, params = batch_statement(
        product_id,
        result.seq_before,
        result.seq_after,
        loaded.last_trade_id,
        work.next_trade_id - 1,
        changed,
        work.trades,
        moves_sql(work.moves),
    )
    if before_commit is not None:
        before_commit()  # the batch is built and not sent: nothing of it can commit
    sent = time.perf_counter()
    try:
        with write_checks(_CHECKS):
            row = conn.execute(sql, params).fetchone()
    except (psycopg.errors.IntegrityError, InsufficientFunds, Conflict) as exc:
        # A stale writer may fail on what the current owner already wrote (trade ids, spent
        # holds) before its fence is read. Say so.
        if _fence_moved(conn, product_id, result.seq_before):
            raise Fenced(product_id) from exc
        raise
    assert row is not None
    result.time = row[-1]  # now(): the transaction's time, trades.created_at's
    # w_build: the statement built; w_commit: from its send until the server committed it.
    result.timings.update(w_build=sent - t, w_commit=time.perf_counter() - sent)


def _fence_moved(conn: psycopg.Connection, product_id: str, seq: int) -> bool:
    row = conn.execute(
        "SELECT last_seq FROM product_state WHERE product_id = %s", (product_id,)
    ).fetchone()
    return row is None or int(row[0]) != seq
