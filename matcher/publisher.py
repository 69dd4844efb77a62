"""Market data to Redis after a batch commits: one MULTI/EXEC pipeline per batch.

The layout is chalicelib/core/market_keys.py. A `Publisher` per product follows the engine through
the batch's events (settlement's BatchResult.events) and keeps a shadow of the book's levels
and resting orders, so a batch costs in proportion to what it changed, never to the book's size:
the L2 and L3 hashes get only the changed levels and orders, the feed message carries the same
changes. 1-minute candles live in memory for 48 h (rebuilt from Postgres on a full publish) and
the 24 h ticker is those candles folded once per minute plus the current minute.

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

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from chalicelib.core import market_history, wire
from chalicelib.core.market_keys import CANDLE_WINDOW_S, TRADES_MAXLEN, Keys, trade_entry_id
from matcher.books import LoadedBook, Rules
from matcher.engine import BUY, SELL, Changed, Done, Fill, Opened
from matcher.settlement import BatchResult, PendingCancelled, Submitted

SIDES = (BUY, SELL)
RESEED_TRADES = 1000  # trades put back in a stream found behind Postgres by more than its tail
DAY_S = 86400

# Shadow of a resting order: [side, price ticks, open lots, priority]
_SIDE, _PRICE, _LOTS, _PRIO = 0, 1, 2, 3


class _WireStrings(dict[int, str]):
    """Wire strings of counts of one unit (ticks, lots), each formatted on first use."""

    MAX = 100_000  # kept before starting over

    def __init__(self, unit: int, exponent: int, places: int) -> None:
        super().__init__()
        self.unit, self.exponent, self.places = unit, exponent, places

    def __missing__(self, count: int) -> str:
        if len(self) > self.MAX:
            self.clear()
        s = self[count] = wire.fixed(count * self.unit, self.exponent, self.places)
        return s


def _minute(ts: float) -> int:
    return int(ts) // 60 * 60


class Publisher:
    """One product's market data writer. Not thread-safe: it belongs to the product's worker."""

    def __init__(self, keys: Keys, rules: Rules) -> None:
        self.keys = keys
        self.rules = rules
        p = rules.product
        self.product = p
        self.pid = p.id
        self._qexp, self._bexp = p.quote.exponent, p.base.exponent
        self._pplaces, self._splaces = wire.price_places(p), wire.size_places(p)
        # A book reuses few prices and sizes, and formatting them was a seventh of a publish
        # (benchmarks/market_data.py, sampled).
        self._prices = _WireStrings(rules.tick, self._qexp, self._pplaces)
        self._sizes = _WireStrings(rules.lot, self._bexp, self._splaces)
        self.loaded: LoadedBook | None = None  # the book the shadow follows
        self.needs_full = True
        self.sequence = 0
        self.orders: dict[Any, list[Any]] = {}
        self.levels: dict[str, dict[int, list[int]]] = {BUY: {}, SELL: {}}  # [lots, count]
        self.candles: dict[int, list[int]] = {}  # minute -> [low, high, open, close, volume]
        self.last: dict[str, str] = {}  # the last trade, wire strings
        self._window_minute = -1
        self._window: list[int] | None = None  # [open, high, low, volume] of the closed minutes
        self._since = 0
        self.full_publishes = 0

    # ------------------------------------------------------------------ formatting

    def price(self, ticks: int) -> str:
        return self._prices[ticks]

    def price_units(self, units: int) -> str:
        return wire.fixed(units, self._qexp, self._pplaces)

    def size(self, lots: int) -> str:
        return self._sizes[lots]

    def size_units(self, units: int) -> str:
        return wire.fixed(units, self._bexp, self._splaces)

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
            if _minute(now) != self._window_minute:
                pipe = redis.pipeline(transaction=True)
                self._roll(pipe, now)
                pipe.hset(self.keys.ticker(self.pid), mapping=self._stats(now))
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
        pid = self.pid
        seq = result.seq_after
        # Hot loop: locals for what every event touches.
        orders, levels, price = self.orders, self.levels, self.price
        # Each level the batch touched, as it was before (None: it did not exist), so that only
        # net changes are published (an order opened and filled in one batch changes nothing).
        touched: dict[tuple[str, int], tuple[int, int] | None] = {}
        moved: set[Any] = set()  # orders whose L3 entry changed
        matches: list[dict[str, Any]] = []
        user: list[dict[str, Any]] = []
        trades = result.trades
        n_trade = 0
        o: Any
        lv: Any
        for e in result.events:
            kind = type(e)
            if kind is Fill:
                o = orders[e.maker_id]
                o[_LOTS] -= e.size
                lv = levels[o[_SIDE]][e.price]
                key = (o[_SIDE], e.price)
                if key not in touched:
                    touched[key] = (lv[0], lv[1])
                lv[0] -= e.size
                moved.add(e.maker_id)
                t = trades[n_trade]
                n_trade += 1
                m = {
                    "type": "match",
                    "trade_id": t.trade_id,
                    "sequence": e.seq,
                    "maker_order_id": t.maker_order_id,
                    "taker_order_id": t.taker_order_id,
                    "time": ts,
                    "product_id": pid,
                    "size": self.size(e.size),
                    "price": price(e.price),
                    "side": t.maker_side,
                }
                matches.append(m)
                user.append(
                    {
                        **m,
                        "user_id": str(e.maker_account),
                        "maker_user_id": str(e.maker_account),
                        "liquidity": "M",
                        "fee": wire.asset_amount(e.maker_fee, self.product.quote.id),
                    }
                )
                user.append(
                    {
                        **m,
                        "user_id": str(e.taker_account),
                        "taker_user_id": str(e.taker_account),
                        "liquidity": "T",
                        "fee": wire.asset_amount(e.taker_fee, self.product.quote.id),
                    }
                )
            elif kind is Opened:
                orders[e.order_id] = [e.side, e.price, e.size, e.seq]
                lv = levels[e.side].get(e.price)
                key = (e.side, e.price)
                if key not in touched:
                    touched[key] = None if lv is None else (lv[0], lv[1])
                if lv is None:
                    levels[e.side][e.price] = [e.size, 1]
                else:
                    lv[0] += e.size
                    lv[1] += 1
                moved.add(e.order_id)
                user.append(
                    {
                        "type": "open",
                        "time": ts,
                        "product_id": pid,
                        "sequence": e.seq,
                        "order_id": str(e.order_id),
                        "price": price(e.price),
                        "remaining_size": self.size(e.size),
                        "side": e.side,
                        "user_id": str(e.account),
                    }
                )
            elif kind is Done:
                o = orders.pop(e.order_id, None)
                remaining = e.remaining
                if o is not None:
                    lv = levels[o[_SIDE]][o[_PRICE]]
                    key = (o[_SIDE], o[_PRICE])
                    if key not in touched:
                        touched[key] = (lv[0], lv[1])
                    lv[0] -= o[_LOTS]
                    lv[1] -= 1
                    moved.add(e.order_id)
                    remaining = o[_LOTS]
                done: dict[str, Any] = {
                    "type": "done",
                    "time": ts,
                    "product_id": pid,
                    "sequence": e.seq,
                    "order_id": str(e.order_id),
                    "reason": e.reason,
                    "side": e.side,
                    "user_id": str(e.account),
                }
                if e.price is not None:
                    done["price"] = price(e.price)
                if remaining is not None:
                    done["remaining_size"] = self.size(remaining)
                if e.reason == "rejected":
                    done["reject_reason"] = e.message
                user.append(done)
            elif kind is Changed:
                o = orders.get(e.order_id)
                if o is not None:
                    delta = e.old_size - e.new_size
                    o[_LOTS] = e.new_size
                    lv = levels[o[_SIDE]][o[_PRICE]]
                    key = (o[_SIDE], o[_PRICE])
                    if key not in touched:
                        touched[key] = (lv[0], lv[1])
                    lv[0] -= delta
                    moved.add(e.order_id)
                change = {
                    "type": "change",
                    "reason": "STP",
                    "time": ts,
                    "sequence": e.seq,
                    "order_id": str(e.order_id),
                    "side": e.side,
                    "product_id": pid,
                    "old_size": self.size(e.old_size),
                    "new_size": self.size(e.new_size),
                    "user_id": str(e.account),
                }
                if e.price is not None:
                    change["price"] = price(e.price)
                user.append(change)
            elif kind is Submitted:
                user.append(self._received(e, ts))
            elif kind is PendingCancelled:
                user.append(
                    {
                        "type": "done",
                        "time": ts,
                        "product_id": pid,
                        "sequence": e.seq,
                        "order_id": e.order.id,
                        "reason": "canceled",
                        "side": e.order.side,
                        "user_id": e.order.user_id,
                    }
                )

        k = self.keys
        pipe = redis.pipeline(transaction=True)
        pipe.exists(k.book(pid))
        l2: list[list[str]] = []
        for side in SIDES:
            sets: dict[str, str] = {}
            dels: list[str] = []
            side_levels = levels[side]
            for (s, p), was in touched.items():
                if s != side:
                    continue
                lv = side_levels[p]
                if lv[1] == 0:
                    del side_levels[p]
                    if was is None:
                        continue
                    ps = price(p)
                    dels.append(ps)
                    l2.append([side, ps, "0"])
                elif was is not None and was[0] == lv[0] and was[1] == lv[1]:
                    continue
                else:
                    ps = price(p)
                    size = self.size(lv[0])
                    sets[ps] = f"{size} {lv[1]}"
                    l2.append([side, ps, size])
            if sets:
                pipe.hset(k.l2(pid, side), mapping=sets)
            if dels:
                pipe.hdel(k.l2(pid, side), *dels)
        l3_sets: dict[str, str] = {}
        l3_dels: list[str] = []
        for oid in moved:
            o = orders.get(oid)
            if o is None:
                l3_dels.append(str(oid))
            else:
                l3_sets[str(oid)] = (
                    f"{o[_SIDE]} {price(o[_PRICE])} {self.size(o[_LOTS])} {o[_PRIO]}"
                )
        if l3_sets:
            pipe.hset(k.l3(pid), mapping=l3_sets)
        if l3_dels:
            pipe.hdel(k.l3(pid), *l3_dels)
        pipe.hset(k.book(pid), mapping={"sequence": seq, "time": ts})

        ticker: dict[str, Any] | None = None
        minute = _minute(now)
        if minute != self._window_minute:
            self._roll(pipe, now)
        if trades:
            changed_minutes: dict[str, str] = {}
            stream = k.trades(pid)
            for t in trades:
                ps, ss = self.price_units(t.price), self.size_units(t.size)
                pipe.xadd(
                    stream,
                    {
                        "trade_id": t.trade_id,
                        "seq": t.seq,
                        "maker_order_id": t.maker_order_id,
                        "taker_order_id": t.taker_order_id,
                        "side": t.maker_side,  # Coinbase's trade side is the maker's
                        "price": ps,
                        "size": ss,
                        "time": ts,
                    },
                    id=trade_entry_id(t.trade_id),
                    maxlen=TRADES_MAXLEN,
                    approximate=True,
                )
                c = self.candles.get(minute)
                if c is None:
                    self.candles[minute] = [t.price, t.price, t.price, t.price, t.size]
                else:
                    if t.price < c[0]:
                        c[0] = t.price
                    if t.price > c[1]:
                        c[1] = t.price
                    c[3] = t.price
                    c[4] += t.size
            changed_minutes[str(minute)] = self._candle_value(self.candles[minute])
            pipe.hset(k.candles(pid), mapping=changed_minutes)
            last = trades[-1]
            self.last = {
                "trade_id": str(last.trade_id),
                "price": self.price_units(last.price),
                "size": self.size_units(last.size),
                "side": last.maker_side,
                "time": ts,
            }
        top = self._top()
        stats = self._stats(now)
        pipe.hset(k.ticker(pid), mapping={**self.last, **top, **stats, "sequence": seq})
        if trades:
            ticker = self._ticker_message(seq, trades[-1], top, stats)
        message = {
            "product_id": pid,
            "sequence": seq,
            "prev_sequence": self.sequence,
            "time": ts,
            "l2": l2,
            "matches": matches,
            "ticker": ticker,
            "user": user,
        }
        # orjson: a batch's feed message took 52 us with json.dumps, 4 with orjson (same JSON).
        pipe.publish(k.feed(pid), orjson.dumps(message))
        replies = pipe.execute()
        self.sequence = seq
        return bool(replies[0])

    def _received(self, e: Submitted, ts: str) -> dict[str, Any]:
        o = e.order
        msg: dict[str, Any] = {
            "type": "received",
            "time": ts,
            "product_id": self.pid,
            "sequence": e.seq,
            "order_id": o.id,
            "side": o.side,
            "order_type": o.type,
            "user_id": o.user_id,
        }
        if o.size_lots is not None:
            msg["size"] = self.size(o.size_lots)
        if o.price_ticks is not None:
            msg["price"] = self.price(o.price_ticks)
        if o.funds is not None:
            msg["funds"] = wire.asset_amount(o.funds, self.product.quote.id)
        return msg

    def _ticker_message(
        self, seq: int, last: Any, top: dict[str, str], stats: dict[str, str]
    ) -> dict[str, Any]:
        return {
            "type": "ticker",
            "sequence": seq,
            "product_id": self.pid,
            "price": self.last["price"],
            "open_24h": stats["open"],
            "volume_24h": stats["volume"],
            "low_24h": stats["low"],
            "high_24h": stats["high"],
            "best_bid": top["bid"],
            "best_bid_size": top["bid_size"],
            "best_ask": top["ask"],
            "best_ask_size": top["ask_size"],
            # Coinbase's ticker side is the taker's (the trades list uses the maker's).
            "side": BUY if last.maker_side == SELL else SELL,
            "time": self.last["time"],
            "trade_id": last.trade_id,
            "last_size": self.last["size"],
        }

    # ------------------------------------------------------------------ ticker and candles

    def _top(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, side in (("bid", BUY), ("ask", SELL)):
            levels = self.levels[side]
            best = (max(levels) if side == BUY else min(levels)) if levels else None
            if best is None:
                out[name] = out[f"{name}_size"] = ""
            else:
                out[name] = self.price(best)
                out[f"{name}_size"] = self.size(self.levels[side][best][0])
        return out

    def _candle_value(self, c: list[int]) -> str:
        pu = self.price_units
        return f"{pu(c[0])} {pu(c[1])} {pu(c[2])} {pu(c[3])} {self.size_units(c[4])}"

    def _roll(self, pipe: Any, now: float) -> None:
        """A new minute: drop candles past the window (memory and Redis) and fold the closed
        minutes of the last 24 h once, so that each batch only adds the current minute.
        Complexity: O(minutes kept), once a minute."""
        minute = _minute(now)
        oldest = minute - CANDLE_WINDOW_S
        stale = [m for m in self.candles if m < oldest]
        for m in stale:
            del self.candles[m]
        if stale:
            pipe.hdel(self.keys.candles(self.pid), *(str(m) for m in stale))
        if oldest > self._since:
            self._since = oldest
            pipe.set(self.keys.candles_since(self.pid), oldest)
        agg: list[int] | None = None
        for m in sorted(m for m in self.candles if minute - DAY_S < m < minute):
            c = self.candles[m]
            if agg is None:
                agg = [c[2], c[1], c[0], c[4]]
            else:
                agg[1] = max(agg[1], c[1])
                agg[2] = min(agg[2], c[0])
                agg[3] += c[4]
        self._window = agg
        self._window_minute = minute

    def _stats(self, now: float) -> dict[str, str]:
        """24 h open/high/low/volume: the folded closed minutes plus the current one."""
        agg = self._window
        cur = self.candles.get(self._window_minute)
        if cur is not None:
            if agg is None:
                agg = [cur[2], cur[1], cur[0], cur[4]]
            else:
                agg = [agg[0], max(agg[1], cur[1]), min(agg[2], cur[0]), agg[3] + cur[4]]
        if agg is None:
            last = self.last.get("price", "")
            return {"open": last, "high": last, "low": last, "volume": self.size_units(0)}
        return {
            "open": self.price_units(agg[0]),
            "high": self.price_units(agg[1]),
            "low": self.price_units(agg[2]),
            "volume": self.size_units(agg[3]),
        }

    # ------------------------------------------------------------------ full publish

    def full(self, redis: Any, conn: psycopg.Connection, loaded: LoadedBook) -> None:
        """Rewrite everything from the book and Postgres. Complexity: O(book + 48 h of minutes)
        plus the trades re-added to a stream that fell behind (at most RESEED_TRADES)."""
        self.needs_full = True
        book = loaded.book
        pid, k = self.pid, self.keys
        now = time.time()
        ts = wire.iso(datetime.fromtimestamp(now, UTC)) or ""
        self.orders = {}
        self.levels = {BUY: {}, SELL: {}}
        for side in SIDES:
            side_levels = self.levels[side]
            for p, lots, oid in book.orders(side):
                live = loaded.live.get(str(oid))
                prio = live.seq if live is not None and live.seq is not None else 0
                self.orders[oid] = [side, p, lots, prio]
                lv = side_levels.get(p)
                if lv is None:
                    side_levels[p] = [lots, 1]
                else:
                    lv[0] += lots
                    lv[1] += 1
        self.loaded = loaded
        self.sequence = book.seq

        oldest = _minute(now) - CANDLE_WINDOW_S
        rows = market_history.candles(conn, pid, 60, oldest, _minute(now))
        self.candles = {r.time: [r.low, r.high, r.open, r.close, r.volume] for r in rows}
        self._since = oldest
        self._window_minute = -1
        latest = market_history.trades_before(conn, pid, None, 1)
        self.last = {}
        if latest:
            t = latest[0]
            self.last = {
                "trade_id": str(t.trade_id),
                "price": self.price_units(t.price),
                "size": self.size_units(t.size),
                "side": t.maker_side,
                "time": wire.iso(t.created_at) or "",
            }
        reseed, drop_stream = self._stream_gap(redis, conn, loaded.last_trade_id)

        pipe = redis.pipeline(transaction=True)
        for side in SIDES:
            pipe.delete(k.l2(pid, side))
            levels = {
                self.price(p): f"{self.size(lv[0])} {lv[1]}" for p, lv in self.levels[side].items()
            }
            if levels:
                pipe.hset(k.l2(pid, side), mapping=levels)
        pipe.delete(k.l3(pid))
        l3 = {
            str(oid): f"{o[_SIDE]} {self.price(o[_PRICE])} {self.size(o[_LOTS])} {o[_PRIO]}"
            for oid, o in self.orders.items()
        }
        if l3:
            pipe.hset(k.l3(pid), mapping=l3)
        pipe.delete(k.candles(pid))
        if self.candles:
            pipe.hset(
                k.candles(pid),
                mapping={str(m): self._candle_value(c) for m, c in self.candles.items()},
            )
        pipe.set(k.candles_since(pid), oldest)
        self._roll(pipe, now)
        if drop_stream:
            pipe.delete(k.trades(pid))
        for t in reseed:
            pipe.xadd(
                k.trades(pid),
                {
                    "trade_id": t.trade_id,
                    "seq": t.seq,
                    "maker_order_id": t.maker_order_id,
                    "taker_order_id": t.taker_order_id,
                    "side": t.maker_side,
                    "price": self.price_units(t.price),
                    "size": self.size_units(t.size),
                    "time": wire.iso(t.created_at) or "",
                },
                id=trade_entry_id(t.trade_id),
                maxlen=TRADES_MAXLEN,
                approximate=True,
            )
        pipe.delete(k.ticker(pid))
        pipe.hset(
            k.ticker(pid),
            mapping={**self.last, **self._top(), **self._stats(now), "sequence": book.seq},
        )
        # Last: a reader that sees the book key sees everything above (MULTI makes it atomic
        # anyway; the order keeps `EXISTS book` meaningful if a later Redis drops MULTI).
        pipe.hset(k.book(pid), mapping={"sequence": book.seq, "time": ts})
        reset = {"product_id": pid, "sequence": book.seq, "reset": True, "time": ts}
        pipe.publish(k.feed(pid), orjson.dumps(reset))
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
