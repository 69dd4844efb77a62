"""One product's pipeline: receive -> settle -> post, a thread per stage, for as long as the
coordinator (coordinator.py) holds the product.

- the receivers (two by default) long-poll the product's queue and hand each batch to the
  settler. They run in a child process that owns the product's SQS traffic (sqs_io.py: the client's
  CPU would otherwise hold the settler's GIL); a reader thread here takes what it sends, and loads
  each batch's orders from Postgres before the settler takes it. A product's queue is split into
  message groups by account (chalicelib/messaging/order_queue.py) and SQS FIFO holds back only the
  groups of batches not yet deleted, so receivers fetch the next batches while the settler is busy:
  SQS round trips overlap with settling instead of adding to it, and two receives in flight return
  disjoint groups;
- the settler owns the product's book and Postgres connection: it takes the batches in the
  order received (that order is the product's sequence), runs the engine and writes each batch
  in ONE transaction (settlement.py). Only this thread ever touches the book;
- the poster (poster.py) publishes each committed batch to Redis and then has its messages
  deleted. A message is deleted only after its batch committed, so a crash anywhere redelivers it,
  and the settler skips what Postgres shows as done. A group's next batch can only be received
  after this delete, which is what keeps an account's messages in order.
Market data's full publish (start, reload, a failed publish, Redis lost) needs the book and the
database to agree: the poster asks for it, and the settler pauses between two batches while the
poster runs it. The threads hand each other the shapes in handoff.py.

The work is I/O-bound (SQS, Postgres, Redis all release the GIL), so threads suffice. Pipelines
share only the coordinator's boto3 client (thread-safe) and Redis pool.

Winding down: when the process stops, the receivers stop (a receive in flight returns within
`wait_s`), the settler finishes the batches already received and the poster deletes them. When
ownership is lost, or a stage hits an error it cannot retry, the batches received and not
settled are released at once for whoever owns the product next; an error is kept in `error` for
the coordinator, which stops the process.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from chalicelib.core.market_keys import keys_for
from chalicelib.messaging import order_queue
from chalicelib.messaging.order_queue import QueueMessage
from chalicelib.platform.logs import logger
from matcher import books
from matcher.books import OrderState
from matcher.handoff import END, FullPublish, ReceivedBatch, SettledBatch
from matcher.marketdata import publisher
from matcher.poster import Poster
from matcher.settlement import (
    BatchResult,
    Conflict,
    Fenced,
    Received,
    key_lookups_only,
    load_orders,
    parse_order_id,
    settle_batch,
)
from matcher.sqs_io import SqsProcess
from matcher.stats import Stats

if TYPE_CHECKING:
    from matcher.coordinator import Matcher

# Errors after which the batch is redone from a freshly loaded book.
RETRYABLE = (
    Fenced,
    Conflict,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.OperationalError,
)
MAX_ATTEMPTS = 5


class _Stop(Exception):
    """Ownership was lost mid-batch: leave the messages for the new owner."""


class ProductWorker(threading.Thread):
    """One product's pipeline. This thread is the settler; it starts the SQS process, the
    thread that reads from it and the poster, and winds them down before it ends."""

    def __init__(self, matcher: Matcher, product_id: str) -> None:
        super().__init__(name=f"matcher-{product_id}", daemon=True)
        self.m = matcher
        self.product_id = product_id
        self.stats = Stats()
        self.error: BaseException | None = None
        self.idle = False  # the last receive came back empty and nothing is in hand
        self.lost = threading.Event()  # set by the coordinator when the lock is gone
        self.halt = threading.Event()  # one of the worker's threads failed or ended
        self._conn: psycopg.Connection | None = None
        self._loaded: books.LoadedBook | None = None
        self.publisher = publisher.Publisher(keys_for(matcher.cfg), books.Rules.of(product_id))
        o = matcher.options
        self._receivers = max(1, o.receivers)
        # Batches received and not yet taken by the settler (receives in flight included).
        self._credit = max(o.prefetch, self._receivers)
        self._inbox: queue.Queue[Any] = queue.Queue()  # bounded by the credit
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._full_wanted = threading.Event()
        self.poster = Poster(
            product_id,
            self.publisher,
            matcher.redis,
            self._outbox,
            self.stats,
            tell=self._tell,
            full_wanted=self._full_wanted,
            idle=lambda: self.idle,
            options=o,
        )
        self._sqs: SqsProcess | None = None
        self._quiet = threading.Event()  # the SQS process stopped receiving
        self._stopped = threading.Event()  # the SQS process ended as told
        self._url = ""
        self._rules = books.Rules.of(product_id)
        self._reader_conn: psycopg.Connection | None = None
        # What the settler committed lately, (batch index, the order rows it wrote), so that a
        # batch whose orders the reader loaded a few batches ago sees them as they are now.
        self._commits = 0
        self._recent: collections.deque[tuple[int, dict[str, OrderState]]] = collections.deque(
            maxlen=64
        )

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> None:
        helpers: list[threading.Thread] = []
        try:
            self._url = order_queue.queue_url(self.m.sqs, self.m.cfg, self.product_id)
            loaded = self._reload()
            logger.info(
                "product owned; book rebuilt",
                extra={
                    "product_id": self.product_id,
                    "seq": loaded.book.seq,
                    "open_orders": len(loaded.live),
                },
            )
            o = self.m.options
            self._sqs = SqsProcess(self.m.cfg, self._url, self._receivers, o.wait_s, self._credit)
            helpers = [
                self._thread("read", self._read_loop),
                self._thread("post", self.poster.run),
            ]
            self._settle_loop()
        except _Stop:
            logger.warning("ownership lost; stopping", extra={"product_id": self.product_id})
        except BaseException as exc:  # reported by the coordinator, which stops the process
            self._fail(exc)
        finally:
            self.halt.set()
            self._wind_down(helpers)

    def _wind_down(self, helpers: list[threading.Thread]) -> None:
        """Stop receiving, hand back what will not be settled, let the poster delete what was
        committed, then stop the SQS process."""
        sqs = self._sqs
        reader_alive = bool(helpers) and helpers[0].is_alive()
        if sqs is not None and reader_alive and not self._quiet.is_set():
            self._tell("quiet")
            self._quiet.wait(self.m.options.wait_s + 10)
        self._release_unsettled()
        self._outbox.put(END)  # the poster ends by telling the SQS process to stop
        for t in helpers:
            t.join()
        if sqs is not None:
            sqs.close()
        for conn in (self._conn, self._reader_conn):
            if conn is not None:
                conn.close()

    def _tell(self, *message: Any) -> None:
        sqs = self._sqs
        if sqs is None:
            return
        try:
            sqs.send(*message)
        except (OSError, ValueError) as exc:  # it died: the error is reported by the reader
            logger.warning("SQS process unreachable", extra={"error": repr(exc)})

    def _thread(self, role: str, target: Callable[[], None]) -> threading.Thread:
        def body() -> None:
            try:
                target()
            except BaseException as exc:
                self._fail(exc)
            finally:
                self.halt.set()

        t = threading.Thread(target=body, name=f"matcher-{self.product_id}-{role}", daemon=True)
        t.start()
        return t

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        logger.error("matcher worker failed", exc_info=exc, extra={"product_id": self.product_id})

    def _connect(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._open("")
        return self._conn

    def _open(self, role: str) -> psycopg.Connection:
        conn = psycopg.connect(
            self.m.cfg.database_url,
            autocommit=True,
            connect_timeout=3,
            application_name=f"exchange-matcher-{self.product_id}{role}",
        )
        key_lookups_only(conn)
        return conn

    def _reload(self) -> books.LoadedBook:
        self._loaded = books.load(self._connect(), self.product_id)
        self._full_wanted.set()  # the publisher's shadow followed the old book
        return self._loaded

    # ------------------------------------------------------------------ from the SQS process

    def _read_loop(self) -> None:
        sqs = self._sqs
        assert sqs is not None
        while True:
            message = sqs.recv()
            if message is None:
                if self._stopped.is_set():
                    return
                raise RuntimeError("the SQS process ended unexpectedly")
            kind = message[0]
            if kind == "batch":
                self.idle = False
                self._inbox.put(self._prepare(message[1], message[2], message[3]))
            elif kind == "idle":
                self.idle = self._inbox.empty()
            elif kind == "deleted":
                self.poster.deleted(*message[1:])
            elif kind == "quiet":
                self._inbox.put(END)  # after every batch it sent
                self._quiet.set()
            elif kind == "stopped":
                self._stopped.set()
                return
            else:
                raise RuntimeError(f"SQS process: {message[1] if len(message) > 1 else kind}")

    def _prepare(self, messages: list[dict[str, Any]], t0: float, t1: float) -> ReceivedBatch:
        """Parse a received batch and load its orders here, off the settler's path: the settler
        only has to apply what it committed since (`_fresh_rows`)."""
        batch = [Received(msg["MessageId"], _parse(msg)) for msg in messages]
        item = ReceivedBatch(messages, t0, t1, batch)
        ids = [r.message.order_id for r in batch if r.message is not None]
        item.commits = self._commits
        t = time.perf_counter()
        try:
            if self._reader_conn is None or self._reader_conn.closed:
                self._reader_conn = self._open("-reader")
            item.rows = load_orders(self._reader_conn, self._rules, ids)
        except psycopg.Error:
            logger.exception(
                "prefetch failed; the settler loads", extra={"product_id": self.product_id}
            )
            if self._reader_conn is not None:
                self._reader_conn.close()
        item.load = time.perf_counter() - t
        return item

    def _fresh_rows(self, parts: list[ReceivedBatch]) -> dict[str, OrderState] | None:
        """The parts' prefetched orders, with every order a batch committed since they were
        read replaced by the settler's own state of it; None if that history is gone (or a
        part has no rows), and the settler loads them."""
        if any(p.rows is None for p in parts):
            return None
        since = min(p.commits for p in parts)
        if self._recent and self._recent[0][0] > since + 1:
            return None  # batches committed since are no longer all remembered
        rows: dict[str, OrderState] = {}
        for p in parts:
            assert p.rows is not None
            rows.update(p.rows)
        for index, states in self._recent:
            if index > since:
                for oid in rows.keys() & states.keys():
                    rows[oid] = states[oid]
        return rows

    def _release_unsettled(self) -> None:
        """Received batches nobody will settle (ownership lost, or a failure): make them
        visible again now rather than after the visibility timeout."""
        left = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, ReceivedBatch):
                left.append(item)
        self._release(left)

    def _release(self, items: list[ReceivedBatch]) -> None:
        handles = [msg["ReceiptHandle"] for item in items for msg in item.messages]
        if handles:
            self._tell("release", handles)

    # ------------------------------------------------------------------ settle

    def _settle_loop(self) -> None:
        merge = max(1, self.m.options.merge)
        quieting = False
        settled = False  # the settler waits for the first batch, not for want of one
        while True:
            if not quieting and (self.m.stopping.is_set() or self.lost.is_set()):
                quieting = True
                self._tell("quiet")  # then finish the batches already received
            if self._full_wanted.is_set():
                self._full_publish()
            waiting = time.perf_counter()
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                if self.halt.is_set():
                    return
                continue
            if first is END:
                return
            taken = time.perf_counter()
            if settled:
                self.stats.starved += taken - waiting
            settled = True
            parts = [first]
            while len(parts) < merge:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if more is END:
                    self._inbox.put(END)  # ends the loop after this batch
                    break
                parts.append(more)
            self._tell("credit", len(parts))
            batch = [r for p in parts for r in p.batch]
            try:
                result = self._settle(batch, self._fresh_rows(parts))
            except BaseException:
                self._release(parts)  # for whoever settles the product next, without delay
                raise
            committed = time.perf_counter()
            self.m.faults.hit("after_commit")
            self._outbox.put(SettledBatch(parts, result, taken, committed))

    def _full_publish(self) -> None:
        """Pause here, between two batches, while the poster rewrites market data from the
        book and Postgres (both now hold exactly the committed batches)."""
        self._full_wanted.clear()
        loaded = self._loaded
        if loaded is None:
            return
        job = FullPublish(loaded, self._connect())
        self._outbox.put(job)
        while not job.done.wait(0.2):
            if self.halt.is_set():
                return

    def _settle(self, batch: list[Received], rows: dict[str, OrderState] | None) -> BatchResult:
        loaded = self._loaded
        assert loaded is not None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self.lost.is_set():
                raise _Stop
            try:
                result = settle_batch(
                    self._connect(),
                    loaded,
                    batch,
                    lambda: self.m.faults.hit("before_commit"),
                    rows,
                )
                self._commits += 1
                self._recent.append((self._commits, {o.id: o for o in result.changed}))
                return result
            except RETRYABLE as exc:
                rows = None  # redone from Postgres as it is now
                if attempt == MAX_ATTEMPTS:
                    raise
                self.stats.retries += 1
                logger.warning(
                    "batch not settled; reloading the book and redoing it",
                    extra={"product_id": self.product_id, "attempt": attempt, "error": repr(exc)},
                )
                if isinstance(exc, psycopg.OperationalError) and self._conn is not None:
                    self._conn.close()
                    time.sleep(min(0.1 * 2**attempt, 2.0))
                if isinstance(exc, Fenced) and not self.m.still_owner(self.product_id):
                    raise _Stop from exc
                loaded = self._reload()
            except BaseException:
                # The book is ahead of Postgres now; never reuse it.
                self._loaded = None
                raise
        raise AssertionError("unreachable")


def _parse(msg: dict[str, Any]) -> QueueMessage | None:
    try:
        parsed = QueueMessage.parse(msg["Body"])
    except ValueError:
        return None
    order_id = parse_order_id(parsed.order_id)
    if order_id is None:
        return None
    return QueueMessage(parsed.kind, order_id, parsed.product_id, parsed.user_id)
