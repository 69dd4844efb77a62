"""The matcher process: own products, consume their queues, settle, publish, delete.

Threads: one coordinator (the caller of `run`) and, per owned product, a pipeline
(receive -> settle -> post):
- the receivers (two by default) long-poll the product's queue and hand each batch to the
  settler. They run in a child process that owns the product's SQS traffic (sqs_io.py: the client's
  CPU would otherwise hold the settler's GIL); a reader thread here takes what it sends. A
  product's queue is split into message groups by account
  (chalicelib/messaging/order_queue.py) and SQS FIFO holds back only the groups of batches not
  yet deleted, so receivers fetch the next batches while the settler is busy: SQS round trips
  overlap with settling instead of adding to it, and two receives in flight return disjoint
  groups;
- the settler owns the product's book and Postgres connection: it takes the batches in the
  order received (that order is the product's sequence), runs the engine and writes each batch
  in ONE transaction (settlement.py). Only this thread ever touches the book;
- the poster publishes each committed batch to Redis and then has its messages deleted. A message
  is deleted only after its batch committed, so a crash anywhere redelivers it, and the
  settler skips what Postgres shows as done. A group's next batch can only be received after
  this delete, which is what keeps an account's messages in order.
Market data's full publish (start, reload, a failed publish, Redis lost) needs the book and the
database to agree: the poster asks for it, and the settler pauses between two batches while the
poster runs it.

The work is I/O-bound (SQS, Postgres, Redis all release the GIL), so threads suffice. Workers
share only the boto3 client (thread-safe) and the Redis pool.
The coordinator holds the advisory locks (ownership.py) on a dedicated connection, polls for
products it does not own yet (taking over a dead matcher's within `poll_s`), watches that the
lock connection lives, and runs the sweeper.

Shutdown (SIGTERM/SIGINT -> `stop()`): the receiver stops (a receive in flight returns within
`wait_s`), the settler finishes the batches already received, the poster deletes them, then the
locks are released and `run` returns 0. A worker that hits an error it cannot retry stops the
whole process with a non-zero code: its messages stay undeleted and are redelivered to whoever
owns the product next.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.market_keys import keys_for
from chalicelib.messaging import order_queue
from chalicelib.messaging.order_queue import QueueMessage
from chalicelib.messaging.sqs import message_client, sqs_client
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import Settings
from chalicelib.platform.logs import logger
from matcher import books, publisher, sweeper
from matcher.books import OrderState
from matcher.faults import Faults
from matcher.ownership import Ownership
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

# Errors after which the batch is redone from a freshly loaded book.
RETRYABLE = (
    Fenced,
    Conflict,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.OperationalError,
)
MAX_ATTEMPTS = 5
FULL_PUBLISH_RETRY_S = 1.0  # a failing full publish (Redis down) is retried this often at most


@dataclass
class Options:
    wait_s: int = 2  # long-poll wait per receive; also the worst-case shutdown latency
    poll_s: float = 1.0  # how often the coordinator tries to take unowned products
    sweep_every_s: float = 2.0
    sweep_after_s: float = 5.0  # a pending order older than this is presumed unsent
    sweep_force_s: float = 30.0  # sweep even a busy product this often
    receivers: int = 2  # receive calls in flight per product (each from other groups)
    # Received batches waiting for the settler, at most. Under load a receive takes longer than a
    # settle (6 against 4 ms, benchmarks/e2e.py), so with 2 the settler waited for a batch 30% of
    # a drain; 4 took that to 23% and the drain rate up 5% (median of 8 alternating drains).
    prefetch: int = 4
    merge: int = 1  # received batches the settler may settle in one transaction
    record_timings: bool = False  # keep every cycle's timings (benchmarks)


@dataclass
class Cycle:
    """Timings of one settled batch (one transaction), seconds."""

    messages: int
    receive: float  # the receive call(s) that fetched it
    queued: float  # from received to taken by the settler
    prefetch: float  # the reader loading the batch's orders, while earlier batches settle
    load: float  # the settler loading them (only when the prefetch could not be used)
    match: float
    write: float
    publish: float
    delete: float
    detail: dict[str, float] = field(default_factory=dict)  # the write: w_build, w_commit
    # perf_counter when the batch had committed and when its market data was published, and its
    # messages' deduplication ids: an order's latency from its send (benchmarks/e2e.py).
    committed_at: float = 0.0
    published_at: float = 0.0
    dedup_ids: tuple[str, ...] = ()

    @property
    def settle(self) -> float:
        """The settler's time for the batch: load, match and write (commit included). The
        product's serial stage, so its throughput bound."""
        return self.load + self.match + self.write

    @property
    def processing(self) -> float:
        """All of the batch's work excluding SQS: the prefetch, settle and the Redis publish
        (those two run on the reader and poster threads, overlapped with other batches')."""
        return self.prefetch + self.settle + self.publish


@dataclass
class Stats:
    batches: int = 0
    messages: int = 0
    trades: int = 0
    poison: int = 0
    retries: int = 0
    starved: float = 0.0  # seconds the settler waited for a batch, once the first had come
    first_at: float | None = None  # perf_counter at the start of the first non-empty receive
    last_at: float | None = None  # perf_counter at the end of the last batch
    cycles: list[Cycle] = field(default_factory=list)


class _Stop(Exception):
    """Ownership was lost mid-batch: leave the messages for the new owner."""


@dataclass
class _Received:
    """One receive call's messages, parsed, with their orders as Postgres had them when the
    reader loaded them (None: the settler loads them itself)."""

    messages: list[dict[str, Any]]
    started: float  # perf_counter before and after the receive call
    ended: float
    batch: list[Received]
    rows: dict[str, OrderState] | None = None
    commits: int = 0  # batches the settler had committed when the rows were read
    load: float = 0.0  # seconds the reader spent loading them


@dataclass
class _Settled:
    parts: list[_Received]
    result: BatchResult
    taken: float  # when the settler took the first part
    committed: float  # when its transaction had committed


@dataclass
class _FullPublish:
    """The settler is paused until `done` is set: the poster may read its book and connection."""

    loaded: books.LoadedBook
    conn: psycopg.Connection
    done: threading.Event = field(default_factory=threading.Event)


_END = object()  # closes a queue: nothing follows


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
        self._sqs: SqsProcess | None = None
        self._quiet = threading.Event()  # the SQS process stopped receiving
        self._stopped = threading.Event()  # the SQS process ended as told
        self._deleting: dict[int, tuple[_Settled, float, float]] = {}
        self._tokens = itertools.count()
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
                self._thread("post", self._post_loop),
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
        self._outbox.put(_END)  # the poster ends by telling the SQS process to stop
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
                self._deleted(*message[1:])
            elif kind == "quiet":
                self._inbox.put(_END)  # after every batch it sent
                self._quiet.set()
            elif kind == "stopped":
                self._stopped.set()
                return
            else:
                raise RuntimeError(f"SQS process: {message[1] if len(message) > 1 else kind}")

    def _prepare(self, messages: list[dict[str, Any]], t0: float, t1: float) -> _Received:
        """Parse a received batch and load its orders here, off the settler's path: the settler
        only has to apply what it committed since (`_fresh_rows`)."""
        batch = [Received(msg["MessageId"], _parse(msg)) for msg in messages]
        item = _Received(messages, t0, t1, batch)
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

    def _fresh_rows(self, parts: list[_Received]) -> dict[str, OrderState] | None:
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
            if isinstance(item, _Received):
                left.append(item)
        self._release(left)

    def _release(self, items: list[_Received]) -> None:
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
            if first is _END:
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
                if more is _END:
                    self._inbox.put(_END)  # ends the loop after this batch
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
            self._outbox.put(_Settled(parts, result, taken, committed))

    def _full_publish(self) -> None:
        """Pause here, between two batches, while the poster rewrites market data from the
        book and Postgres (both now hold exactly the committed batches)."""
        self._full_wanted.clear()
        loaded = self._loaded
        if loaded is None:
            return
        job = _FullPublish(loaded, self._connect())
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

    # ------------------------------------------------------------------ post

    def _post_loop(self) -> None:
        next_full = 0.0
        while True:
            try:
                item = self._outbox.get(timeout=0.5)
            except queue.Empty:
                if self.idle:
                    self._tick()
                continue
            if item is _END:
                self._tell("stop")  # after the deletes sent before it
                return
            if isinstance(item, _FullPublish):
                try:
                    if time.monotonic() >= next_full:
                        self.publisher.full(self.m.redis, item.conn, item.loaded)
                except Exception:
                    next_full = time.monotonic() + FULL_PUBLISH_RETRY_S
                    logger.exception(
                        "market data full publish failed", extra={"product_id": self.product_id}
                    )
                finally:
                    item.done.set()
                continue
            self._post(item)

    def _tick(self) -> None:
        try:
            if not self.publisher.tick(self.m.redis):
                self._full_wanted.set()
        except Exception:
            self._full_wanted.set()
            logger.exception("market data tick failed", extra={"product_id": self.product_id})

    def _post(self, done: _Settled) -> None:
        """Publish a committed batch, then have its messages deleted (poison ones are released
        for the dead-letter queue instead)."""
        m = self.m
        result = done.result
        t2 = time.perf_counter()
        try:
            if not self.publisher.publish(m.redis, result):
                self._full_wanted.set()  # the full publish supersedes this batch
        except Exception:
            # Never undoes or blocks a committed batch: Postgres has it, Redis is rebuilt.
            self._full_wanted.set()
            logger.exception("market data publish failed", extra={"product_id": self.product_id})
        t3 = time.perf_counter()
        poison = set(result.poison)
        messages = [msg for part in done.parts for msg in part.messages]
        if poison:
            self._poison([msg for msg in messages if msg["MessageId"] in poison])
        token = next(self._tokens)
        self._deleting[token] = (done, t2, t3)
        self._tell(
            "delete",
            token,
            [msg["ReceiptHandle"] for msg in messages if msg["MessageId"] not in poison],
        )

    def _deleted(self, token: int, t4: float, t5: float, failed: list[dict[str, Any]]) -> None:
        """The SQS process deleted a batch's messages: the batch is done."""
        done, t2, t3 = self._deleting.pop(token)
        for f in failed:
            # Redelivered later and skipped then (the order is no longer pending).
            logger.warning("delete failed", extra={"product_id": self.product_id, **f})
        result = done.result
        n = sum(len(p.messages) for p in done.parts)
        s = self.stats
        if s.first_at is None:
            s.first_at = done.parts[0].started
        s.last_at = t5
        s.batches += 1
        s.messages += n
        s.trades += len(result.trades)
        s.poison += len(result.poison)
        if self.m.options.record_timings:
            tm = result.timings
            s.cycles.append(
                Cycle(
                    n,
                    sum(p.ended - p.started for p in done.parts),
                    done.taken - done.parts[0].ended,
                    sum(p.load for p in done.parts),
                    tm["load"],
                    tm["match"],
                    tm["write"],
                    t3 - t2,
                    t5 - t4,
                    {k: v for k, v in tm.items() if k.startswith("w_")},
                    done.committed,
                    t3,
                    tuple(r.message.dedup_id for p in done.parts for r in p.batch if r.message),
                )
            )

    def _poison(self, messages: list[dict[str, Any]]) -> None:
        for msg in messages:
            logger.error(
                "poison message left for the dead-letter queue",
                extra={
                    "product_id": self.product_id,
                    "message_id": msg["MessageId"],
                    "receive_count": msg.get("Attributes", {}).get("ApproximateReceiveCount"),
                    "body": msg.get("Body", "")[:500],
                },
            )
        # Visible again at once: a FIFO group is blocked while a message of it is in flight,
        # so waiting out the visibility timeout five times would stall the group for minutes.
        self._tell("release", [msg["ReceiptHandle"] for msg in messages])


def _parse(msg: dict[str, Any]) -> QueueMessage | None:
    try:
        parsed = QueueMessage.parse(msg["Body"])
    except ValueError:
        return None
    order_id = parse_order_id(parsed.order_id)
    if order_id is None:
        return None
    return QueueMessage(parsed.kind, order_id, parsed.product_id, parsed.user_id)


class Matcher:
    def __init__(
        self,
        cfg: Settings,
        products: Iterable[str] | None = None,
        options: Options | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.cfg = cfg
        self.products = list(products or PRODUCTS)
        unknown = [p for p in self.products if p not in PRODUCTS]
        if unknown:
            raise ValueError(f"unknown products: {', '.join(unknown)}")
        self.options = options or Options()
        self.faults = faults or Faults.from_env()
        self.sqs = sqs_client(cfg)
        self.redis = redis_client(cfg.redis_url)
        self.stopping = threading.Event()
        self.workers: dict[str, ProductWorker] = {}
        self.ownership = Ownership(cfg.database_url)
        self._ownership_lock = threading.Lock()
        self._sweep_conn: psycopg.Connection | None = None
        self._last_sweep: dict[str, float] = {}
        self._urls: dict[str, str] = {}
        self.error: BaseException | None = None

    def stop(self) -> None:
        self.stopping.set()

    def still_owner(self, product_id: str) -> bool:
        with self._ownership_lock:
            return self.ownership.alive() and product_id in self.ownership.owned

    def run(self) -> int:
        """Run until `stop()`; returns the process exit code."""
        logger.info("matcher starting", extra={"products": self.products})
        next_sweep = 0.0
        try:
            while not self.stopping.is_set():
                self._own()
                for product_id, w in list(self.workers.items()):
                    if w.error is not None:
                        self.error = w.error
                        self.stopping.set()
                    elif not w.is_alive():
                        self._drop(product_id)
                now = time.monotonic()
                if now >= next_sweep and not self.stopping.is_set():
                    next_sweep = now + self.options.sweep_every_s
                    self._sweep(now)
                self.stopping.wait(self.options.poll_s)
        finally:
            for w in self.workers.values():
                w.join()
            with self._ownership_lock:
                self.ownership.close()
            if self._sweep_conn is not None:
                self._sweep_conn.close()
            logger.info("matcher stopped", extra={"error": repr(self.error)})
        return 0 if self.error is None else 1

    def _own(self) -> None:
        with self._ownership_lock:
            if not self.ownership.alive():
                logger.error("lock connection lost; every product released")
            owned = set(self.ownership.owned)
        for product_id, w in self.workers.items():
            if product_id not in owned:
                w.lost.set()
        for product_id in self.products:
            if product_id in owned or product_id in self.workers:
                continue
            try:
                with self._ownership_lock:
                    got = self.ownership.try_acquire(product_id)
            except psycopg.OperationalError:
                logger.exception("cannot reach Postgres for the product locks")
                return
            if got:
                w = ProductWorker(self, product_id)
                self.workers[product_id] = w
                w.start()

    def _drop(self, product_id: str) -> None:
        """A worker that ended (ownership lost): release what is left and try again later."""
        self.workers.pop(product_id, None)
        with self._ownership_lock:
            try:
                self.ownership.release(product_id)
            except psycopg.Error:
                self.ownership.lost()

    def _sweep(self, now: float) -> None:
        o = self.options
        for product_id, w in list(self.workers.items()):
            # Under a backlog a pending order is usually just queued: only sweep a product whose
            # queue looked empty, or now and then regardless.
            last = self._last_sweep.get(product_id, 0.0)
            if not (w.idle or now - last >= o.sweep_force_s):
                continue
            self._last_sweep[product_id] = now
            try:
                if self._sweep_conn is None or self._sweep_conn.closed:
                    self._sweep_conn = psycopg.connect(
                        self.cfg.database_url, autocommit=True, connect_timeout=3
                    )
                url = self._urls.get(product_id) or order_queue.queue_url(
                    self.sqs, self.cfg, product_id
                )
                self._urls[product_id] = url
                sent = sweeper.sweep(
                    self._sweep_conn, message_client(self.cfg), url, product_id, o.sweep_after_s
                )
                if sent:
                    logger.info(
                        "re-sent pending orders", extra={"product_id": product_id, "n": sent}
                    )
            except Exception:
                # The sweeper is a safety net; its failure must not stop matching.
                logger.exception("sweep failed", extra={"product_id": product_id})

    def all_stats(self) -> dict[str, Stats]:
        return {p: w.stats for p, w in self.workers.items()}
