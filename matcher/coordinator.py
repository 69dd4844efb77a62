"""The matcher process's coordinator, `Matcher`: it decides which products this process runs
and keeps one pipeline (pipeline.py) per product it owns.

`run` is the coordinator's loop, on the caller's thread. It holds the products' advisory locks
(ownership.py) on a dedicated connection, polls for products it does not own yet (taking over a
dead matcher's within `poll_s`), watches that the lock connection lives (a pipeline whose lock is
gone is told to stop), starts a pipeline for each product it takes and drops those that ended,
and runs the sweeper (sweeper.py) over the products whose queues look idle.

Shutdown (SIGTERM/SIGINT -> `stop()`): the receivers stop (a receive in flight returns within
`wait_s`), the settlers finish the batches already received, the posters delete them, then the
locks are released and `run` returns 0. A pipeline that hits an error it cannot retry stops the
whole process with a non-zero code: its messages stay undeleted and are redelivered to whoever
owns the product next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import psycopg

from chalicelib.core.catalog import PRODUCTS
from chalicelib.messaging import order_queue
from chalicelib.messaging.sqs import message_client, sqs_client
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import Settings
from chalicelib.platform.logs import logger
from matcher import sweeper
from matcher.faults import Faults
from matcher.options import Options
from matcher.ownership import Ownership
from matcher.pipeline import ProductWorker
from matcher.stats import Stats


class Matcher:
    """One matcher process: the products it may own, the clients its pipelines share, and the
    coordinator's loop (`run`)."""

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
