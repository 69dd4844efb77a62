"""The last stage of a product's pipeline (pipeline.py): the poster publishes each committed
batch's market data to Redis, then has the SQS process delete its messages, and counts the batch
(stats.py) once they are deleted.

A message is deleted only after its batch committed, so a crash anywhere redelivers it, and the
settler skips what Postgres shows as done. A group's next batch can only be received after this
delete, which is what keeps an account's messages in order. A failed publish never undoes or
blocks a committed batch: Postgres has it, and the poster asks for a full publish instead, which
rewrites the product's market data from the book and Postgres while the settler waits between
two batches. Poison messages are not deleted but released at once, for the dead-letter queue."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from chalicelib.platform.logs import logger
from matcher.handoff import END, FullPublish, SettledBatch
from matcher.marketdata.publisher import Publisher
from matcher.options import Options
from matcher.stats import Cycle, Stats

FULL_PUBLISH_RETRY_S = 1.0  # a failing full publish (Redis down) is retried this often at most


class Poster:
    """One product's poster: `run` takes what the settler puts on its outbox until `END`;
    `deleted` is called from the reader thread when the SQS process reports a delete."""

    def __init__(
        self,
        product_id: str,
        publisher: Publisher,
        redis_client: redis.Redis,
        outbox: queue.Queue[Any],
        stats: Stats,
        *,
        tell: Callable[..., None],
        full_wanted: threading.Event,
        idle: Callable[[], bool],
        options: Options,
    ) -> None:
        self.product_id = product_id
        self.publisher = publisher
        self._redis = redis_client
        self._outbox = outbox
        self._stats = stats
        self._tell = tell  # a message to the product's SQS process
        self._full_wanted = full_wanted  # set to ask the settler for a full publish
        self._idle = idle  # the product's queue came back empty and nothing is in hand
        self._options = options
        self._deleting: dict[int, tuple[SettledBatch, float, float]] = {}
        self._tokens = itertools.count()

    def run(self) -> None:
        next_full = 0.0
        while True:
            try:
                item = self._outbox.get(timeout=0.5)
            except queue.Empty:
                if self._idle():
                    self._tick()
                continue
            if item is END:
                self._tell("stop")  # after the deletes sent before it
                return
            if isinstance(item, FullPublish):
                try:
                    if time.monotonic() >= next_full:
                        self.publisher.full(self._redis, item.conn, item.loaded)
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
            if not self.publisher.tick(self._redis):
                self._full_wanted.set()
        except Exception:
            self._full_wanted.set()
            logger.exception("market data tick failed", extra={"product_id": self.product_id})

    def _post(self, done: SettledBatch) -> None:
        """Publish a committed batch, then have its messages deleted (poison ones are released
        for the dead-letter queue instead)."""
        result = done.result
        t2 = time.perf_counter()
        try:
            if not self.publisher.publish(self._redis, result):
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

    def deleted(self, token: int, t4: float, t5: float, failed: list[dict[str, Any]]) -> None:
        """The SQS process deleted a batch's messages: the batch is done."""
        done, t2, t3 = self._deleting.pop(token)
        for f in failed:
            # Redelivered later and skipped then (the order is no longer pending).
            logger.warning("delete failed", extra={"product_id": self.product_id, **f})
        self._count(done, t2, t3, t4, t5)

    def _count(self, done: SettledBatch, t2: float, t3: float, t4: float, t5: float) -> None:
        """Add a done batch to the stats; t2..t3 is its publish, t4..t5 its delete."""
        result = done.result
        n = sum(len(p.messages) for p in done.parts)
        s = self._stats
        if s.first_at is None:
            s.first_at = done.parts[0].started
        s.last_at = t5
        s.batches += 1
        s.messages += n
        s.trades += len(result.trades)
        s.poison += len(result.poison)
        if self._options.record_timings:
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
