"""The order book and its matching: see the package docstring for the rules.

Representation, chosen for CPython speed (every choice was measured on the benchmark workload):

* A resting order is a plain ``list`` laid out by the ``_SIZE`` .. ``_LEVEL`` indexes below, not
  a slotted object: a list display costs a fifth of a Python ``__init__`` call, and an indexed
  read costs the same as a slot read. An empty list is a lazily deleted (cancelled) entry.
* A level is a FIFO ``deque`` of those lists plus its live size and count; a cancel only zeroes
  the entry and a taker drops such entries as it meets them at the front.
* Each side keeps the level prices in a sorted list of keys with the best last (key = price for
  bids, -price for asks), so the hot operations touch the end of a list.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Hashable, Mapping
from fractions import Fraction
from itertools import pairwise
from typing import Any

from .events import (
    _SIDES,
    _STP_SET,
    _TIF_SET,
    BUY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STP_MODES,
    TIME_IN_FORCE,
    CancelRejected,
    Changed,
    Done,
    DuplicateOrderId,
    Fill,
    Opened,
    Order,
)

# Events are built with tuple.__new__ in hot paths: it skips the generated Python-level __new__
# of NamedTuple, which costs more than the rest of a fill's bookkeeping.
_new = tuple.__new__

# The fields of a resting order (a list, see the module docstring). The level back-reference
# lets cancel skip the price lookup; a live order's level is never dropped (it has count > 0).
_SIZE, _ID, _ACCOUNT, _SIDE, _PRICE, _STP, _PRIORITY, _LEVEL = range(8)
_Resting = list  # [size, id, account, side, price, stp, priority, level], or [] once cancelled

_MATCHED, _STOPPED, _BUDGET = 0, 1, 2  # how _take_funds ended

# A market order has no price limit: its bound is below every level key.
_NO_BOUND = float("-inf")

# How the book reads an Order: as a tuple of anything, not as its declared field types. Compiled
# with mypyc, a read at a declared type is checked (a float price would raise TypeError rather
# than be rejected, and a field narrowed to int is unboxed, so True would pass as a size of 1).
_Fields = tuple[Any, ...]


class _Level:
    """One price level: live size and count, and a FIFO that may hold cancelled entries."""

    __slots__ = ("book_side", "count", "orders", "price", "size")

    def __init__(self, price: int, book_side: _Side) -> None:
        self.price = price
        self.size = 0
        self.count = 0
        self.orders: deque[_Resting] = deque()
        self.book_side = book_side


class _Side:
    """One side of the book. ``keys`` is sorted ascending with the best level last (key = price
    for bids, -price for asks), so the hot operations touch the end of a list."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.levels: dict[int, _Level] = {}
        self.keys: list[int] = []
        self.sign = sign


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class OrderBook:
    """One product's book. Not thread-safe; one owner feeds it commands in sequence."""

    def __init__(
        self,
        quote_units_per_tick_lot: int,
        min_size_lots: int = 1,
        maker_fee: Fraction = Fraction(1, 1000),
        taker_fee: Fraction = Fraction(2, 1000),
        min_funds: int = 1,
        seq: int = 0,
    ) -> None:
        """Complexity: O(1)."""
        if not isinstance(quote_units_per_tick_lot, int) or quote_units_per_tick_lot < 1:
            raise ValueError("quote_units_per_tick_lot must be a positive int")
        if not isinstance(min_size_lots, int) or min_size_lots < 1:
            raise ValueError("min_size_lots must be a positive int")
        if not isinstance(min_funds, int) or min_funds < 1:
            raise ValueError("min_funds must be a positive int")
        maker_fee, taker_fee = Fraction(maker_fee), Fraction(taker_fee)
        for rate in (maker_fee, taker_fee):
            if not 0 <= rate < 1:
                raise ValueError("fee rates must be in [0, 1)")
        self.quote_units_per_tick_lot = quote_units_per_tick_lot
        self.min_size_lots = min_size_lots
        self.min_funds = min_funds
        self._maker_num = maker_fee.numerator
        self._maker_den = maker_fee.denominator
        self._taker_num = taker_fee.numerator
        self._taker_den = taker_fee.denominator
        # What a fill's arithmetic needs, read by the taker loop in one unpack.
        self._fill_terms = (
            quote_units_per_tick_lot,
            self._maker_num,
            self._maker_den,
            self._taker_num,
            self._taker_den,
        )
        self._seq = seq
        self._bids = _Side(1)
        self._asks = _Side(-1)
        # The opposite side's keys, read by every limit order to see whether it crosses: one
        # attribute read instead of two. The lists are only ever mutated in place.
        self._bid_keys = self._bids.keys
        self._ask_keys = self._asks.keys
        self._index: dict[Hashable, _Resting] = {}

    # ---------------------------------------------------------------- rules and helpers

    @property
    def maker_fee(self) -> Fraction:
        return Fraction(self._maker_num, self._maker_den)

    @property
    def taker_fee(self) -> Fraction:
        return Fraction(self._taker_num, self._taker_den)

    @property
    def seq(self) -> int:
        """The sequence number of the last event emitted (0 before any). Complexity: O(1)."""
        return self._seq

    def buy_hold(self, price_ticks: int, size_lots: int) -> int:
        """Quote units that always cover a limit buy (notional plus every fee it can pay).

        Fees are rounded up per fill and a fill is at least one lot, so the worst case is one
        fill per lot at the limit price, at the higher of the two rates. Complexity: O(1).
        """
        per_lot = price_ticks * self.quote_units_per_tick_lot
        rate = max(self.maker_fee, self.taker_fee)
        return size_lots * (per_lot + _ceil_div(per_lot * rate.numerator, rate.denominator))

    # ---------------------------------------------------------------- commands

    def submit(self, order: Order) -> list[Any]:
        """Match ``order`` and rest what the rules let rest; return the events.

        Complexity: O(log L + F) for F orders touched (filled, or removed by self-trade
        prevention, or cancelled entries skipped) and L levels; a new level costs an extra O(L)
        memmove in the worst case. FOK adds a read-only walk over the orders it needs.
        Raises :class:`DuplicateOrderId` if ``order.id`` is resting; every other problem with
        the order is a ``Done(reason="rejected")`` event.
        """
        # One unpack instead of ten attribute reads: this is the path of every order. It reads a
        # view typed tuple[Any, ...] (see _Fields), as do the other readers of an Order.
        fields: _Fields = order
        oid, account, side, otype, price, size, funds, tif, post_only, stp = fields
        index = self._index
        if oid in index:
            raise DuplicateOrderId(oid)
        # Fast path: a valid GTC limit order (most orders). Anything else, or a bad side, goes
        # to _submit_other, which validates fully and gives the reject reason.
        if not (
            otype == LIMIT
            and tif == GTC
            and type(price) is int
            and type(size) is int
            and price > 0
            and size >= self.min_size_lots
            and funds is None
            and stp in _STP_SET
        ):
            if otype == MARKET:
                return self._market(order)
            return self._submit_other(order)
        if side == BUY:
            keys = self._ask_keys
            if keys and -keys[-1] <= price:
                return self._cross(self._asks, oid, account, side, price, size, GTC, post_only, stp)
            own = self._bids
        elif side == SELL:
            keys = self._bid_keys
            if keys and keys[-1] >= price:
                return self._cross(self._bids, oid, account, side, price, size, GTC, post_only, stp)
            own = self._asks
        else:
            return self._submit_other(order)
        # It does not cross: rest it here rather than through _place, as calls cost.
        self._seq = seq = self._seq + 1
        levels = own.levels
        level = levels.get(price)
        if level is None:
            level = levels[price] = _Level(price, own)
            insort(own.keys, price * own.sign)
        r = [size, oid, account, side, price, stp, seq, level]
        level.orders.append(r)
        level.size += size
        level.count += 1
        index[oid] = r
        return [_new(Opened, (seq, oid, account, side, price, size))]

    def _submit_other(self, order: Order) -> list[Any]:
        """Every limit order the fast path of :meth:`submit` does not take (IOC, FOK and
        invalid orders), and orders of an invalid type. Complexity: as :meth:`submit`."""
        fields: _Fields = order
        oid, account, side, otype, price, size, funds, tif, post_only, stp = fields
        if not (
            otype == LIMIT
            and side in _SIDES
            and type(price) is int
            and price > 0
            and type(size) is int
            and size >= self.min_size_lots
            and tif in _TIF_SET
            and stp in _STP_SET
            and funds is None
            and (not post_only or tif == GTC)
        ):
            if otype == MARKET:
                return self._market(order)
            return [self._rejected(order, self._limit_problem(order))]
        if side == BUY:
            opp = self._asks
            keys = opp.keys
            crosses = bool(keys) and -keys[-1] <= price
        else:
            opp = self._bids
            keys = opp.keys
            crosses = bool(keys) and keys[-1] >= price
        if crosses:
            return self._cross(opp, oid, account, side, price, size, tif, post_only, stp)
        if tif == GTC:
            return [self._rest(oid, account, side, price, size, stp)]
        # Nothing to take: IOC and FOK end at once.
        msg = "ioc" if tif == IOC else "fok not filled"
        reason = "canceled" if tif == IOC else "rejected"
        self._seq = seq = self._seq + 1
        return [_new(Done, (seq, oid, account, side, price, reason, msg, size, None))]

    def _cross(
        self,
        opp: _Side,
        oid: Hashable,
        account: Hashable,
        side: str,
        price: int,
        size: int,
        tif: str,
        post_only: bool,
        stp: str,
    ) -> list[Any]:
        """A valid limit order that crosses ``opp``: take, then rest, cancel or finish.
        Complexity: as :meth:`submit`."""
        if post_only:
            self._seq = seq = self._seq + 1
            return [
                _new(Done, (seq, oid, account, side, price, "rejected", "post only", size, None))
            ]
        if tif == FOK and not self._fok_fillable(opp, account, price, size, stp):
            self._seq = seq = self._seq + 1
            return [
                _new(
                    Done,
                    (seq, oid, account, side, price, "rejected", "fok not filled", size, None),
                )
            ]
        events: list[Any] = []
        remaining = self._take(events, opp, oid, account, side, price, price * opp.sign, size, stp)
        if remaining is None:
            return events
        if remaining == 0:
            self._seq = seq = self._seq + 1
            events.append(_new(Done, (seq, oid, account, side, price, "filled", "", 0, None)))
        elif tif == GTC:
            events.append(self._rest(oid, account, side, price, remaining, stp))
        else:
            # FOK was checked fillable, so only IOC gets here with a remainder.
            self._seq = seq = self._seq + 1
            events.append(
                _new(Done, (seq, oid, account, side, price, "canceled", "ioc", remaining, None))
            )
        return events

    def _limit_problem(self, order: Order) -> str:
        fields: _Fields = order
        _, _, side, otype, price, size, funds, tif, _, stp = fields
        if otype != LIMIT:
            return "invalid order type"
        if side != BUY and side != SELL:
            return "invalid side"
        if type(price) is not int or price < 1:
            return "invalid price"
        if type(size) is not int or size < self.min_size_lots:
            return "size too small"
        if tif not in TIME_IN_FORCE:
            return "invalid time in force"
        if stp not in _STP_SET:
            return "invalid stp"
        if funds is not None:
            return "funds only for market orders"
        return "post only requires GTC"

    def cancel(self, order_id: Hashable) -> list[Any]:
        """Cancel a resting order. Complexity: O(1) amortised (lazy deletion; a level's queue is
        compacted when it is mostly cancelled entries; an emptied level costs O(L) memmove).

        Returns ``[Done(reason="canceled")]``, or ``[CancelRejected]`` if the id is not resting.
        """
        r = self._index.pop(order_id, None)
        if r is None:
            return [_new(CancelRejected, (order_id, "not found"))]
        remaining, _, account, side, price, _, _, level = r
        # Emptied, the entry is a cancelled one: takers drop it when they meet it, compaction
        # below drops it in C, and it stops holding its id, account and level meanwhile.
        r.clear()
        level.size -= remaining
        level.count = count = level.count - 1
        if not count:
            self._drop_level(level)
        elif len(level.orders) > 2 * count + 16:
            # Bounds the memory of cancelled entries in a level that never drains. filter(None)
            # keeps the non-empty (live) entries without a Python-level loop: this is the
            # slowest thing a cancel can do, and it showed in the p99 latency when it was one.
            level.orders = deque(filter(None, level.orders))
        self._seq = seq = self._seq + 1
        return [_new(Done, (seq, order_id, account, side, price, "canceled", "", remaining, None))]

    # ---------------------------------------------------------------- queries

    def best_bid(self) -> int | None:
        """Best bid price in ticks, or None. Complexity: O(1)."""
        keys = self._bids.keys
        return keys[-1] if keys else None

    def best_ask(self) -> int | None:
        """Best ask price in ticks, or None. Complexity: O(1)."""
        keys = self._asks.keys
        return -keys[-1] if keys else None

    def depth(self, side: str, levels: int | None = None) -> list[tuple[int, int, int]]:
        """L2: ``(price, total size, order count)`` of the best ``levels`` levels of ``side``,
        best first. Complexity: O(k) for k levels returned."""
        s = self._side(side)
        keys = s.keys
        n = len(keys) if levels is None else min(levels, len(keys))
        out = []
        for i in range(1, n + 1):
            lv = s.levels[keys[-i] * s.sign]
            out.append((lv.price, lv.size, lv.count))
        return out

    def orders(self, side: str) -> list[tuple[int, int, Hashable]]:
        """L3: ``(price, size, order id)`` of every resting order of ``side`` in priority order.
        Complexity: O(n) in orders (and cancelled entries not yet compacted)."""
        s = self._side(side)
        return [
            (o[_PRICE], o[_SIZE], o[_ID])
            for k in reversed(s.keys)
            for o in s.levels[k * s.sign].orders
            if o
        ]

    def order(self, order_id: Hashable) -> dict[str, Any] | None:
        """The resting order with this id as a snapshot row, or None. Complexity: O(1)."""
        r = self._index.get(order_id)
        return None if r is None else _row(r)

    def __len__(self) -> int:
        """Number of resting orders. Complexity: O(1)."""
        return len(self._index)

    def __contains__(self, order_id: Hashable) -> bool:
        """Whether ``order_id`` rests on the book. Complexity: O(1)."""
        return order_id in self._index

    # ---------------------------------------------------------------- snapshot / restore

    def snapshot(self) -> dict[str, Any]:
        """Plain data (ints, strings, lists, dicts; ids and accounts as given) from which
        :meth:`restore` rebuilds this book exactly. Complexity: O(n log n).

        ``{"seq": int, "rules": {...constructor ints...}, "orders": [{"id", "account", "side",
        "price", "size", "stp", "priority"}, ...]}`` with orders by priority (the ``seq`` of the
        ``Opened`` event that put them on the book).
        """
        rows = sorted((_row(r) for r in self._index.values()), key=lambda row: row["priority"])
        return {
            "seq": self._seq,
            "rules": {
                "quote_units_per_tick_lot": self.quote_units_per_tick_lot,
                "min_size_lots": self.min_size_lots,
                "min_funds": self.min_funds,
                "maker_fee": [self._maker_num, self._maker_den],
                "taker_fee": [self._taker_num, self._taker_den],
            },
            "orders": rows,
        }

    @classmethod
    def restore(
        cls, snapshot: Mapping[str, Any], rules: Mapping[str, Any] | None = None
    ) -> OrderBook:
        """Rebuild a book from :meth:`snapshot` output (or equivalent database rows).

        ``rules`` overrides ``snapshot["rules"]`` (which may then be absent); fee rates may be
        Fractions or ``[numerator, denominator]``. Raises ValueError if the orders are not a
        valid book (duplicate ids or priorities, priority past ``seq``, crossed, bad sizes).
        Complexity: O(n log n).
        """
        given = dict(snapshot.get("rules") or {})
        given.update(rules or {})
        for fee in ("maker_fee", "taker_fee"):
            if isinstance(given.get(fee), (list, tuple)):
                given[fee] = Fraction(*given[fee])
        seq = int(snapshot["seq"])
        book = cls(**given, seq=seq)
        last = 0
        for row in sorted(snapshot["orders"], key=lambda row: int(row["priority"])):
            oid, side, price, size = row["id"], row["side"], row["price"], row["size"]
            priority = int(row["priority"])
            if priority <= last or priority > seq:
                raise ValueError(f"bad priority {priority} for order {oid!r}")
            last = priority
            if oid in book._index:
                raise ValueError(f"duplicate order id {oid!r}")
            if side not in (BUY, SELL) or row["stp"] not in STP_MODES:
                raise ValueError(f"bad side or stp for order {oid!r}")
            if type(price) is not int or price < 1 or type(size) is not int or size < 1:
                raise ValueError(f"bad price or size for order {oid!r}")
            book._place(oid, row["account"], side, price, size, row["stp"], priority)
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise ValueError("crossed book")
        return book

    # ---------------------------------------------------------------- invariants

    def _check(self) -> None:
        """Assert every internal invariant. For tests; O(n)."""
        live = 0
        assert self._bid_keys is self._bids.keys and self._ask_keys is self._asks.keys
        for s, side in ((self._bids, BUY), (self._asks, SELL)):
            keys = s.keys
            assert all(a < b for a, b in pairwise(keys)), "keys not strictly sorted"
            assert len(keys) == len(s.levels), "keys and levels differ"
            assert {k * s.sign for k in keys} == set(s.levels), "keys and levels differ"
            for price, lv in s.levels.items():
                assert lv.price == price
                assert lv.count > 0, "empty level kept"
                assert all(type(o) is list and len(o) in (0, 8) for o in lv.orders), "layout"
                alive = [o for o in lv.orders if o]
                assert lv.count == len(alive), "level count"
                assert lv.size == sum(o[_SIZE] for o in alive), "level size"
                prio = [o[_PRIORITY] for o in alive]
                assert prio == sorted(prio) and len(set(prio)) == len(prio), "FIFO order"
                for o in alive:
                    assert o[_SIZE] > 0 and o[_PRICE] == price and o[_SIDE] == side
                    assert o[_LEVEL] is lv and lv.book_side is s, "back references"
                    assert self._index.get(o[_ID]) is o, "index mismatch"
                    assert 0 < o[_PRIORITY] <= self._seq
                    assert o[_STP] in STP_MODES
                live += len(alive)
        assert all(self._index.values()), "cancelled entry indexed"
        assert live == len(self._index), "index has orders not on the book"
        bid, ask = self.best_bid(), self.best_ask()
        assert bid is None or ask is None or bid < ask, "crossed book"

    # ---------------------------------------------------------------- internals

    def _side(self, side: str) -> _Side:
        if side == BUY:
            return self._bids
        if side == SELL:
            return self._asks
        raise ValueError(f"side must be {BUY!r} or {SELL!r}")

    def _rejected(self, order: Order, message: str) -> Done:
        self._seq = seq = self._seq + 1
        fields: _Fields = order
        oid, account, side, otype, price, size, funds, _, _, _ = fields
        return _new(
            Done,
            (
                seq,
                oid,
                account,
                side,
                price if otype == LIMIT else None,
                "rejected",
                message,
                size if type(size) is int else None,
                funds if type(funds) is int else None,
            ),
        )

    def _rest(
        self, oid: Hashable, account: Hashable, side: str, price: int, size: int, stp: str
    ) -> Opened:
        self._seq = seq = self._seq + 1
        self._place(oid, account, side, price, size, stp, seq)
        return _new(Opened, (seq, oid, account, side, price, size))

    def _place(
        self,
        oid: Hashable,
        account: Hashable,
        side: str,
        price: int,
        size: int,
        stp: str,
        priority: int,
    ) -> None:
        s = self._bids if side == BUY else self._asks
        level = s.levels.get(price)
        if level is None:
            level = s.levels[price] = _Level(price, s)
            insort(s.keys, price * s.sign)
        r = [size, oid, account, side, price, stp, priority, level]
        level.orders.append(r)
        level.size += size
        level.count += 1
        self._index[oid] = r

    def _drop_level(self, level: _Level) -> None:
        s = level.book_side
        del s.levels[level.price]
        keys = s.keys
        key = level.price * s.sign
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def _fok_fillable(self, opp: _Side, account: Hashable, price: int, size: int, stp: str) -> bool:
        # Replays the walk _take would make without changing anything. Own orders under co are
        # cancelled and skipped; under any other mode they stop or shrink the taker.
        need = size
        sign = opp.sign
        for key in reversed(opp.keys):
            lp = key * sign
            if (lp > price) if sign < 0 else (lp < price):
                return False
            for o in opp.levels[lp].orders:
                if not o:  # cancelled
                    continue
                if o[_ACCOUNT] == account:
                    if stp == "co":
                        continue
                    return False
                need -= o[_SIZE]
                if need <= 0:
                    return True
        return False

    def _market(self, order: Order) -> list[Any]:
        """A market order (validated here). Complexity: O(F) for F orders touched."""
        fields: _Fields = order
        oid, account, side, _, price, size, funds, _, post_only, stp = fields
        if (
            funds is None
            and type(size) is int
            and size >= self.min_size_lots
            and price is None
            and not post_only
            and stp in _STP_SET
        ):
            # By size only (the common market order): the size-capped loop, with no price bound.
            if side == BUY:
                opp = self._asks
            elif side == SELL:
                opp = self._bids
            else:
                return [self._rejected(order, "invalid side")]
            events: list[Any] = []
            remaining = self._take(events, opp, oid, account, side, None, _NO_BOUND, size, stp)
            if remaining is None:
                return events
            reason, msg = ("filled", "") if remaining == 0 else ("canceled", "no liquidity")
            self._seq = seq = self._seq + 1
            events.append(_new(Done, (seq, oid, account, side, None, reason, msg, remaining, None)))
            return events
        reject = None
        if side != BUY and side != SELL:
            reject = "invalid side"
        elif size is None and funds is None:
            reject = "size or funds required"
        elif size is not None and (type(size) is not int or size < self.min_size_lots):
            reject = "size too small"
        elif funds is not None and side != BUY:
            reject = "funds only for market buys"
        elif funds is not None and (type(funds) is not int or funds < self.min_funds):
            reject = "funds too small"
        elif stp not in STP_MODES:
            reject = "invalid stp"
        elif price is not None:
            reject = "price not allowed on market orders"
        elif post_only:
            reject = "post only requires limit"
        if reject is not None:
            return [self._rejected(order, reject)]
        # Only a market buy with funds gets here.
        assert funds is not None
        opp = self._asks
        events = []
        if size is None and stp == "dc":
            stp = "cn"  # nothing to decrement a funds-only taker by (Coinbase does the same)
        rem, left, status = self._take_funds(events, opp, oid, account, side, size, funds, stp)
        if status == _STOPPED:
            return events
        filled = any(type(e) is Fill for e in events)
        if rem == 0:
            reason, msg = "filled", ""
        elif status == _BUDGET:
            # The budget cannot buy one more lot at the best price left.
            reason, msg = ("filled", "") if filled else ("rejected", "funds too small")
        else:
            reason, msg = "canceled", "no liquidity"
        self._seq = seq = self._seq + 1
        events.append(_new(Done, (seq, oid, account, side, None, reason, msg, rem, left)))
        return events

    def _take(
        self,
        events: list[Any],
        opp: _Side,
        oid: Hashable,
        account: Hashable,
        side: str,
        limit: int | None,
        bound: float,
        remaining: int,
        stp: str,
    ) -> int | None:
        """Match a taker capped by size (every limit order, market orders by size) against
        ``opp``; return its remaining size, or None when self-trade prevention cancelled it
        (its Done has been emitted). ``bound`` is ``limit`` as a level key (``limit * sign``,
        or -inf for no limit): a level is reachable while its key is at least ``bound``.

        Complexity: O(F) for F orders touched plus O(1) per level emptied.
        """
        # Hot loop: bind everything read per fill to locals (attribute lookups dominate here).
        keys = opp.keys
        levels = opp.levels
        sign = opp.sign
        index = self._index
        q_units, mnum, mden, tnum, tden = self._fill_terms
        maker_side = SELL if side == BUY else BUY
        seq = self._seq
        append = events.append
        while keys:
            key = keys[-1]
            if key < bound:
                break
            price = key * sign
            level = levels[price]
            q = level.orders
            while True:
                maker = q[0]
                if not maker:  # cancelled
                    q.popleft()
                    continue
                # One unpack instead of three subscripts: the fields every fill reads.
                msize, mid, macc, _, _, _, _, _ = maker
                if macc == account:
                    # Self-trade prevention: the taker's mode decides; never a trade.
                    seq, left, stopped = self._self_trade(
                        append, seq, level, maker, oid, account, side, limit, remaining, None, stp
                    )
                    assert left is not None  # a taker capped by size keeps a size
                    remaining = left
                    if stopped:
                        if not level.count:
                            del levels[price]
                            keys.pop()
                        self._seq = seq
                        return None
                    if not level.count:
                        break
                    continue
                if remaining < msize:
                    # The maker is left with the rest: the taker is done.
                    notional = price * remaining * q_units
                    seq += 1
                    append(
                        _new(
                            Fill,
                            (
                                seq,
                                mid,
                                oid,
                                macc,
                                account,
                                price,
                                remaining,
                                notional,
                                -(-notional * mnum // mden),
                                -(-notional * tnum // tden),
                                side,
                            ),
                        )
                    )
                    maker[_SIZE] = msize - remaining
                    level.size -= remaining
                    self._seq = seq
                    return 0
                notional = price * msize * q_units
                append(
                    _new(
                        Fill,
                        (
                            seq + 1,
                            mid,
                            oid,
                            macc,
                            account,
                            price,
                            msize,
                            notional,
                            -(-notional * mnum // mden),
                            -(-notional * tnum // tden),
                            side,
                        ),
                    )
                )
                seq += 2
                append(_new(Done, (seq, mid, macc, maker_side, price, "filled", "", 0, None)))
                q.popleft()
                # The entry is unreachable now (off the queue and the index): no need to zero it.
                del index[mid]
                remaining -= msize
                count = level.count - 1
                if not count:
                    break  # the level goes, so its size and count need no update
                level.count = count
                level.size -= msize
                if not remaining:
                    self._seq = seq
                    return 0
            # Only an emptied level gets here.
            del levels[price]
            keys.pop()
            if not remaining:
                break
        self._seq = seq
        return remaining

    def _take_funds(
        self,
        events: list[Any],
        opp: _Side,
        oid: Hashable,
        account: Hashable,
        side: str,
        remaining: int | None,
        funds: int,
        stp: str,
    ) -> tuple[int | None, int | None, int]:
        """Match a market buy capped by ``funds`` (and by size unless ``remaining`` is None)
        against ``opp``; return (remaining size, funds left, status).

        Status is _STOPPED when STP cancelled the taker (its Done has been emitted), _BUDGET
        when the funds cannot buy one more lot, else _MATCHED. Complexity: O(F) for F orders
        touched plus O(1) per level emptied.
        """
        keys = opp.keys
        levels = opp.levels
        sign = opp.sign
        index = self._index
        q_units = self.quote_units_per_tick_lot
        mnum, mden = self._maker_num, self._maker_den
        tnum, tden = self._taker_num, self._taker_den
        per_funds_den = tden + tnum
        seq = self._seq
        append = events.append
        stopped = False
        while keys:
            price = keys[-1] * sign
            level = levels[price]
            q = level.orders
            while True:
                maker = q[0]
                if not maker:  # cancelled
                    q.popleft()
                    continue
                msize = maker[_SIZE]
                if maker[_ACCOUNT] == account:
                    seq, remaining, stopped = self._self_trade(
                        append, seq, level, maker, oid, account, side, None, remaining, funds, stp
                    )
                    if stopped or not level.count:
                        break
                    continue
                n = msize if remaining is None or remaining > msize else remaining
                # Lots the funds cover with the taker fee on top (the fee is rounded up per
                # fill, which the loop settles by spending the exact amount below).
                afford = funds * tden // (price * q_units * per_funds_den)
                if afford < n:
                    n = afford
                    if not n:
                        self._seq = seq
                        return remaining, funds, _BUDGET
                notional = price * n * q_units
                tfee = -(-notional * tnum // tden)
                seq += 1
                append(
                    _new(
                        Fill,
                        (
                            seq,
                            maker[_ID],
                            oid,
                            maker[_ACCOUNT],
                            account,
                            price,
                            n,
                            notional,
                            -(-notional * mnum // mden),
                            tfee,
                            side,
                        ),
                    )
                )
                funds -= notional + tfee
                if remaining is not None:
                    remaining -= n
                level.size -= n
                if n == msize:
                    q.popleft()
                    level.count -= 1
                    del index[maker[_ID]]
                    seq += 1
                    append(
                        _new(
                            Done,
                            (
                                seq,
                                maker[_ID],
                                maker[_ACCOUNT],
                                maker[_SIDE],
                                price,
                                "filled",
                                "",
                                0,
                                None,
                            ),
                        )
                    )
                    if not level.count:
                        break
                else:
                    maker[_SIZE] = msize - n
                if remaining == 0:
                    break
            if not level.count:
                del levels[price]
                keys.pop()
            if stopped or remaining == 0:
                break
        self._seq = seq
        return remaining, funds, _STOPPED if stopped else _MATCHED

    def _self_trade(
        self,
        append: Any,
        seq: int,
        level: _Level,
        maker: _Resting,
        oid: Hashable,
        account: Hashable,
        side: str,
        limit: int | None,
        remaining: int | None,
        funds: int | None,
        stp: str,
    ) -> tuple[int, int | None, bool]:
        """Apply STP between the taker and its own resting ``maker`` at the front of ``level``.
        Returns (seq, taker remaining, taker stopped). Complexity: O(1)."""
        msize = maker[_SIZE]
        cancel_maker = stp == "co" or stp == "cb"
        cancel_taker = stp == "cn" or stp == "cb"
        if stp == "dc":
            # remaining is not None: funds-only takers were switched to cn by the caller.
            assert remaining is not None
            if remaining < msize:
                seq += 1
                append(
                    _new(
                        Changed,
                        (
                            seq,
                            maker[_ID],
                            maker[_ACCOUNT],
                            maker[_SIDE],
                            maker[_PRICE],
                            msize,
                            msize - remaining,
                            "self_trade",
                        ),
                    )
                )
                maker[_SIZE] = msize - remaining
                level.size -= remaining
                cancel_taker = True
            elif remaining == msize:
                cancel_maker = cancel_taker = True
            else:
                cancel_maker = True
                seq += 1
                append(
                    _new(
                        Changed,
                        (
                            seq,
                            oid,
                            account,
                            side,
                            limit,
                            remaining,
                            remaining - msize,
                            "self_trade",
                        ),
                    )
                )
                remaining -= msize
        if cancel_maker:
            level.orders.popleft()
            level.count -= 1
            level.size -= msize
            del self._index[maker[_ID]]
            seq += 1
            append(
                _new(
                    Done,
                    (
                        seq,
                        maker[_ID],
                        maker[_ACCOUNT],
                        maker[_SIDE],
                        maker[_PRICE],
                        "self_trade",
                        stp,
                        msize,
                        None,
                    ),
                )
            )
        if cancel_taker:
            seq += 1
            append(
                _new(Done, (seq, oid, account, side, limit, "self_trade", stp, remaining, funds))
            )
            return seq, remaining, True
        return seq, remaining, False


def _row(r: _Resting) -> dict[str, Any]:
    return {
        "id": r[_ID],
        "account": r[_ACCOUNT],
        "side": r[_SIDE],
        "price": r[_PRICE],
        "size": r[_SIZE],
        "stp": r[_STP],
        "priority": r[_PRIORITY],
    }
