"""The matcher process: own products, consume their queues, settle, publish, delete.

Threads: one coordinator (the caller of `run`) and one worker thread per owned product.
- A product's throughput is bounded by its FIFO group's one in-flight batch, so products are
  independent pipelines; a thread each lets every product long-poll its own queue without an
  idle queue delaying a busy one (a single loop would have to shorten its polls and spin).
  The work is I/O-bound (SQS, Postgres, Redis all release the GIL), so threads suffice.
- Each worker has its own Postgres connection and its own book; they share only the boto3
  client (thread-safe) and the Redis pool.
- The coordinator holds the advisory locks (ownership.py) on a dedicated connection, polls for
  products it does not own yet (taking over a dead matcher's within `poll_s`), watches that the
  lock connection lives, and runs the sweeper.

Shutdown (SIGTERM/SIGINT -> `stop()`): workers finish the batch in hand (a receive in flight
returns within `wait_s`), then the locks are released and `run` returns 0. A worker that hits
an error it cannot retry stops the whole process with a non-zero code: its messages stay
undeleted and are redelivered to whoever owns the product next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from chalicelib import order_queue
from chalicelib.cache import redis_client
from chalicelib.catalog import PRODUCTS
from chalicelib.config import Settings
from chalicelib.logs import logger
from chalicelib.market_keys import keys_for
from chalicelib.order_queue import QueueMessage
from chalicelib.sqs import sqs_client
from matcher import books, publisher, sweeper
from matcher.faults import Faults
from matcher.ownership import Ownership
from matcher.settlement import (
    BatchResult,
    Conflict,
    Fenced,
    Received,
    parse_order_id,
    settle_batch,
)

# Errors after which the batch is redone from a freshly loaded book.
RETRYABLE = (
    Fenced,
    Conflict,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.OperationalError,
)
MAX_ATTEMPTS = 5


@dataclass
class Options:
    wait_s: int = 2  # long-poll wait per receive; also the worst-case shutdown latency
    poll_s: float = 1.0  # how often the coordinator tries to take unowned products
    sweep_every_s: float = 2.0
    sweep_after_s: float = 5.0  # a pending order older than this is presumed unsent
    sweep_force_s: float = 30.0  # sweep even a busy product this often
    record_timings: bool = False  # keep every cycle's timings (benchmarks)


@dataclass
class Cycle:
    """Timings of one batch, seconds."""

    messages: int
    receive: float
    load: float
    match: float
    write: float
    publish: float
    delete: float
    detail: dict[str, float] = field(default_factory=dict)  # the write's statements

    @property
    def processing(self) -> float:
        """The cycle excluding SQS: load, match, write (commit included) and publish."""
        return self.load + self.match + self.write + self.publish


@dataclass
class Stats:
    batches: int = 0
    messages: int = 0
    trades: int = 0
    poison: int = 0
    retries: int = 0
    first_at: float | None = None  # perf_counter at the start of the first non-empty receive
    last_at: float | None = None  # perf_counter at the end of the last batch
    cycles: list[Cycle] = field(default_factory=list)


class _Stop(Exception):
    """Ownership was lost mid-batch: leave the messages for the new owner."""


class ProductWorker(threading.Thread):
    def __init__(self, matcher: Matcher, product_id: str) -> None:
        super().__init__(name=f"matcher-{product_id}", daemon=True)
        self.m = matcher
        self.product_id = product_id
        self.stats = Stats()
        self.error: BaseException | None = None
        self.idle = False  # the last receive came back empty
        self.lost = threading.Event()  # set by the coordinator when the lock is gone
        self._conn: psycopg.Connection | None = None
        self._loaded: books.LoadedBook | None = None
        self.publisher = publisher.Publisher(keys_for(matcher.cfg), books.Rules.of(product_id))

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> None:
        try:
            self._loop()
        except _Stop:
            logger.warning("ownership lost; stopping", extra={"product_id": self.product_id})
        except BaseException as exc:  # reported by the coordinator, which stops the process
            self.error = exc
            logger.exception("matcher worker failed", extra={"product_id": self.product_id})
        finally:
            if self._conn is not None:
                self._conn.close()

    def _running(self) -> bool:
        return not self.m.stopping.is_set() and not self.lost.is_set()

    def _connect(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.m.cfg.database_url,
                autocommit=True,
                connect_timeout=3,
                application_name=f"exchange-matcher-{self.product_id}",
            )
        return self._conn

    def _reload(self) -> books.LoadedBook:
        self._loaded = books.load(self._connect(), self.product_id)
        return self._loaded

    def _loop(self) -> None:
        m = self.m
        url = order_queue.queue_url(m.sqs, m.cfg, self.product_id)
        loaded = self._reload()
        logger.info(
            "product owned; book rebuilt",
            extra={
                "product_id": self.product_id,
                "seq": loaded.book.seq,
                "open_orders": len(loaded.live),
            },
        )
        self._market_data(None)
        while self._running():
            t0 = time.perf_counter()
            reply = m.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=m.options.wait_s,
                AttributeNames=["ApproximateReceiveCount"],
            )
            t1 = time.perf_counter()
            messages = reply.get("Messages", [])
            self.idle = not messages
            if not messages:
                self._market_data(None)
                continue
            self._cycle(url, messages, t0, t1)

    # ------------------------------------------------------------------ one batch

    def _cycle(self, url: str, messages: list[dict[str, Any]], t0: float, t1: float) -> None:
        """Settle, publish and delete one received batch (t0..t1: its receive call)."""
        receive_s = t1 - t0
        m = self.m
        batch = [Received(msg["MessageId"], _parse(msg)) for msg in messages]
        result = self._settle(batch)
        m.faults.hit("after_commit")
        loaded = self._loaded
        assert loaded is not None
        t2 = time.perf_counter()
        self._market_data(result)
        t3 = time.perf_counter()
        poison = set(result.poison)
        handles = {msg["MessageId"]: msg["ReceiptHandle"] for msg in messages}
        done = [i for i in handles if i not in poison]
        if done:
            reply = m.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "ReceiptHandle": handles[i]} for n, i in enumerate(done)],
            )
            for failed in reply.get("Failed", []):
                # Redelivered later and skipped then (the order is no longer pending).
                logger.warning("delete failed", extra={"product_id": self.product_id, **failed})
        if poison:
            self._poison(url, [msg for msg in messages if msg["MessageId"] in poison])
        t4 = time.perf_counter()
        s = self.stats
        if s.first_at is None:
            s.first_at = t0
        s.last_at = t4
        s.batches += 1
        s.messages += len(messages)
        s.trades += len(result.trades)
        s.poison += len(poison)
        if m.options.record_timings:
            tm = result.timings
            s.cycles.append(
                Cycle(
                    len(messages),
                    receive_s,
                    tm["load"],
                    tm["match"],
                    tm["write"],
                    t3 - t2,
                    t4 - t3,
                    {k: v for k, v in tm.items() if k.startswith("w_")},
                )
            )

    def _market_data(self, result: BatchResult | None) -> None:
        """Publish a committed batch (None: on start and when idle, republish if Redis lost
        it). Never raises: Postgres has the batch, and market data can be rebuilt from it."""
        loaded = self._loaded
        if loaded is None:
            return
        try:
            if result is None:
                self.publisher.tick(self.m.redis, self._connect(), loaded)
            else:
                self.publisher.publish(self.m.redis, self._connect(), loaded, result)
        except Exception:
            logger.exception("market data publish failed", extra={"product_id": self.product_id})

    def _settle(self, batch: list[Received]) -> BatchResult:
        loaded = self._loaded
        assert loaded is not None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self.lost.is_set():
                raise _Stop
            try:
                return settle_batch(
                    self._connect(), loaded, batch, lambda: self.m.faults.hit("before_commit")
                )
            except RETRYABLE as exc:
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

    def _poison(self, url: str, messages: list[dict[str, Any]]) -> None:
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
        # so waiting out the visibility timeout five times would stall the product for minutes.
        self.m.sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": msg["ReceiptHandle"], "VisibilityTimeout": 0}
                for n, msg in enumerate(messages)
            ],
        )


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
                sent = sweeper.sweep(self._sweep_conn, self.sqs, url, product_id, o.sweep_after_s)
                if sent:
                    logger.info(
                        "re-sent pending orders", extra={"product_id": product_id, "n": sent}
                    )
            except Exception:
                # The sweeper is a safety net; its failure must not stop matching.
                logger.exception("sweep failed", extra={"product_id": product_id})

    def all_stats(self) -> dict[str, Stats]:
        return {p: w.stats for p, w in self.workers.items()}
