"""Market data to Redis after a batch commits: one MULTI/EXEC pipeline per batch.

The layout is chalicelib/core/market_keys.py. A `Publisher` per product orchestrates the parts,
each in a module of its own and none touching Redis: the book diff (book_diff.py: a
shadow of the book's levels and resting orders that follows the batch's events, so a batch
costs in proportion to what it changed, never to the book's size), the feed messages
(feed_messages.py), the candles and the 24 h figures (candles.py) and the ticker hash
(ticker.py). Here is the Redis write of what they give.

A full publish (everything rewritten from the book and Postgres, then a `reset` feed message)
happens when the publisher starts, when the worker reloaded its book (the shadow would no longer
follow it), after a failed publish, and when the book key is found missing (Redis flushed or
replaced): the batch pipeline checks it with EXISTS, and so does the worker's idle tick.

Threads: batches are published on the worker's publishing thread while its settling thread is
already matching the next batch, so `publish` and `tick` read only the shadow and the batch,
never the live book. `full` reads the book and Postgres: the worker runs it only while the
settling thread is paused between two batches (both then agree with what is committed).

Redis is derived data (DESIGN: "Redis can be lost and rebuilt"): a failure to publish is
logged by the caller and never undoes or blocks a committed batch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from chalicelib.core import market_history, wire
from chalicelib.core.market_keys import CANDLE_WINDOW_S, TRADES_MAXLEN, Keys, trade_entry_id
from matcher.batch_sql import Trade
from matcher.books import LoadedBook, Rules
from matcher.marketdata import feed_messages
from matcher.marketdata.book_diff import SIDES, BookShadow
from matcher.marketdata.candles import Candles, minute_of
from matcher.marketdata.ticker import Ticker
from matcher.marketdata.wire_strings import ProductStrings
from matcher.settlement import BatchResult

RESEED_TRADES = 1000  # trades put back in a stream found behind Postgres by more than its tail


class Publisher:
    """One product's market data writer. Not thread-safe: it belongs to the product's worker."""

    def __init__(self, keys: Keys, rules: Rules) -> None:
        self.keys = keys
        self.rules = rules
        self.product = rules.product
        self.pid = rules.product.id
        self.strings = ProductStrings(rules.product)
        self.shadow = BookShadow()
        self.candles = Candles()
        self.ticker = Ticker()
        self.loaded: LoadedBook | None = None  # the book the shadow follows
        self.needs_full = True
        self.sequence = 0
        self.full_publishes = 0

    # ------------------------------------------------------------------ entry points

    def publish(self, redis: Any, result: BatchResult) -> bool:
        """After a committed batch. False when a full publish is needed instead (none was done
        since the last failure or reload, or Redis lost the book): the caller runs `full`, which
        supersedes this batch. Any failure leaves `needs_full` set."""
        if self.needs_full:
            return False
        if result.seq_after < self.sequence or (
            result.seq_after == result.seq_before and not result.events
        ):
            return True  # already in a full publish, or nothing happened (only redeliveries)
        try:
            if not self._batch(redis, result):
                self.needs_full = True  # Redis had lost the book: rebuild it all
                return False
        except BaseException:
            self.needs_full = True
            raise
        return True

    def tick(self, redis: Any) -> bool:
        """When idle: roll the 24 h ticker forward. False when a full publish is needed (Redis
        lost the book, or none was done since the last failure)."""
        try:
            if self.needs_full or not redis.exists(self.keys.book(self.pid)):
                self.needs_full = True
                return False
            now = time.time()
            if minute_of(now) != self.candles.window_minute:
                pipe = redis.pipeline(transaction=True)
                self._roll(pipe, now)
                stats = self.candles.stats(self.strings, self.ticker.last_price)
                pipe.hset(self.keys.ticker(self.pid), mapping=stats)
                pipe.execute()
        except BaseException:
            self.needs_full = True
            raise
        return True

    # ------------------------------------------------------------------ one batch

    def _batch(self, redis: Any, result: BatchResult) -> bool:
        """Publish one batch's changes; False if Redis had lost the book (the caller rebuilds)."""
        when = result.time or datetime.now(UTC)
        ts = wire.iso(when) or ""
        now = when.timestamp()
        seq, trades, strings = result.seq_after, result.trades, self.strings

        diff = self.shadow.apply(result.events)
        matches, user = feed_messages.event_messages(
            result.events, trades, diff.done_lots, ts, self.pid, strings
        )
        levels = self.shadow.level_writes(diff, strings)
        l3_sets, l3_dels = self.shadow.order_writes(diff, strings)

        pipe = redis.pipeline(transaction=True)
        pipe.exists(self.keys.book(self.pid))
        self._write_book(pipe, levels.sets, levels.dels, l3_sets, l3_dels, seq, ts)
        minute = minute_of(now)
        if minute != self.candles.window_minute:
            self._roll(pipe, now)
        if trades:
            self._write_trades(pipe, trades, ts, minute)
            self.ticker.traded(trades[-1], ts, strings)
        top = self.shadow.top(strings)
        stats = self.candles.stats(strings, self.ticker.last_price)
        pipe.hset(self.keys.ticker(self.pid), mapping=self.ticker.fields(top, stats, seq))
        ticker = None
        if trades:
            ticker = feed_messages.ticker(seq, self.pid, trades[-1], self.ticker.last, top, stats)
        message = feed_messages.batch(
            self.pid, seq, self.sequence, ts, levels.l2, matches, ticker, user
        )
        # orjson: the same compact JSON as json.dumps, at a fraction of its CPU.
        pipe.publish(self.keys.feed(self.pid), orjson.dumps(message))
        replies = pipe.execute()
        self.sequence = seq
        return bool(replies[0])

    def _write_book(
        self,
        pipe: Any,
        l2_sets: dict[str, dict[str, str]],
        l2_dels: dict[str, list[str]],
        l3_sets: dict[str, str],
        l3_dels: list[str],
        seq: int,
        ts: str,
    ) -> None:
        """The changed level-2 levels and level-3 orders, then the book's sequence and time."""
        k, pid = self.keys, self.pid
        for side in SIDES:
            if l2_sets[side]:
                pipe.hset(k.l2(pid, side), mapping=l2_sets[side])
            if l2_dels[side]:
                pipe.hdel(k.l2(pid, side), *l2_dels[side])
        if l3_sets:
            pipe.hset(k.l3(pid), mapping=l3_sets)
        if l3_dels:
            pipe.hdel(k.l3(pid), *l3_dels)
        pipe.hset(k.book(pid), mapping={"sequence": seq, "time": ts})

    def _write_trades(self, pipe: Any, trades: Sequence[Trade], ts: str, minute: int) -> None:
        """The batch's trades onto the stream, and the candle of their minute."""
        self._append_trades(pipe, trades, itertools.repeat(ts))
        candle = self.candles.add(trades, minute)
        pipe.hset(
            self.keys.candles(self.pid), mapping={str(minute): Candles.value(candle, self.strings)}
        )

    def _append_trades(
        self, pipe: Any, trades: Iterable[Trade | market_history.TradeRow], times: Iterable[str]
    ) -> None:
        """Trades onto the stream, each with its time. Hot path: locals, no call per trade."""
        stream = self.keys.trades(self.pid)
        xadd, price, size = pipe.xadd, self.strings.price_units, self.strings.size_units
        for t, ts in zip(trades, times, strict=False):
            xadd(
                stream,
                {
                    "trade_id": t.trade_id,
                    "seq": t.seq,
                    "maker_order_id": t.maker_order_id,
                    "taker_order_id": t.taker_order_id,
                    "side": t.maker_side,  # Coinbase's trade side is the maker's
                    "price": price(t.price),
                    "size": size(t.size),
                    "time": ts,
                },
                id=trade_entry_id(t.trade_id),
                maxlen=TRADES_MAXLEN,
                approximate=True,
            )

    def _roll(self, pipe: Any, now: float) -> None:
        """A new minute (candles.Candles.roll): drop the stale minutes from Redis too."""
        stale, since = self.candles.roll(now)
        if stale:
            pipe.hdel(self.keys.candles(self.pid), *(str(m) for m in stale))
        if since is not None:
            pipe.set(self.keys.candles_since(self.pid), since)

    # ------------------------------------------------------------------ full publish

    def full(self, redis: Any, conn: psycopg.Connection, loaded: LoadedBook) -> None:
        """Rewrite everything from the book and Postgres. Complexity: O(book + 48 h of minutes)
        plus the trades re-added to a stream that fell behind (at most RESEED_TRADES)."""
        self.needs_full = True
        book = loaded.book
        pid, k, strings = self.pid, self.keys, self.strings
        now = time.time()
        ts = wire.iso(datetime.fromtimestamp(now, UTC)) or ""
        self.shadow.reload(loaded)
        self.loaded = loaded
        self.sequence = book.seq

        oldest = minute_of(now) - CANDLE_WINDOW_S
        self.candles.reload(market_history.candles(conn, pid, 60, oldest, minute_of(now)), oldest)
        latest = market_history.trades_before(conn, pid, None, 1)
        self.ticker.reload(latest[0] if latest else None, strings)
        reseed, drop_stream = self._stream_gap(redis, conn, loaded.last_trade_id)

        pipe = redis.pipeline(transaction=True)
        for side in SIDES:
            pipe.delete(k.l2(pid, side))
            levels = self.shadow.level_hash(side, strings)
            if levels:
                pipe.hset(k.l2(pid, side), mapping=levels)
        pipe.delete(k.l3(pid))
        l3 = self.shadow.order_hash(strings)
        if l3:
            pipe.hset(k.l3(pid), mapping=l3)
        pipe.delete(k.candles(pid))
        if self.candles.by_minute:
            pipe.hset(
                k.candles(pid),
                mapping={
                    str(m): Candles.value(c, strings) for m, c in self.candles.by_minute.items()
                },
            )
        pipe.set(k.candles_since(pid), oldest)
        self._roll(pipe, now)
        if drop_stream:
            pipe.delete(k.trades(pid))
        self._append_trades(pipe, reseed, (wire.iso(t.created_at) or "" for t in reseed))
        pipe.delete(k.ticker(pid))
        top = self.shadow.top(strings)
        stats = self.candles.stats(strings, self.ticker.last_price)
        pipe.hset(k.ticker(pid), mapping=self.ticker.fields(top, stats, book.seq))
        # Last: a reader that sees the book key sees everything above (MULTI makes it atomic
        # anyway; the order keeps `EXISTS book` meaningful if a later Redis drops MULTI).
        pipe.hset(k.book(pid), mapping={"sequence": book.seq, "time": ts})
        pipe.publish(k.feed(pid), orjson.dumps(feed_messages.reset(pid, book.seq, ts)))
        pipe.execute()
        self.needs_full = False
        self.full_publishes += 1

    def _stream_gap(
        self, redis: Any, conn: psycopg.Connection, last_trade_id: int
    ) -> tuple[list[market_history.TradeRow], bool]:
        """What the trades stream misses of Postgres: (trades to add, whether to drop it first).
        The stream must stay contiguous from its first entry for the REST reads to trust it."""
        newest = redis.xrevrange(self.keys.trades(self.pid), count=1)
        have = int(newest[0][0].split(b"-")[0]) if newest else 0
        if have == last_trade_id:
            return [], False
        if 0 < have < last_trade_id and last_trade_id - have <= RESEED_TRADES:
            return market_history.trades_after(conn, self.pid, have, RESEED_TRADES)[::-1], False
        rows = market_history.trades_before(conn, self.pid, None, RESEED_TRADES)
        return rows[::-1], True
