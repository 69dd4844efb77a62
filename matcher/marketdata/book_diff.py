"""The book as market data last published it, and what a batch changed in it.

`BookShadow` follows the engine through a batch's events (settlement's BatchResult.events): it
keeps every resting order and every level, so a batch costs in proportion to what it changed,
never to the book's size. `apply` returns the batch's `BookDiff`: each level it touched as it
was before (so that only net changes are published: an order opened and filled in one batch
changes nothing) and each order whose level-3 entry changed. The shadow is read only on the
publishing thread; the live book belongs to the settling thread.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.core.market_keys import level_value, order_value
from matcher.books import LoadedBook
from matcher.engine import BUY, SELL, Changed, Done, Fill, Opened
from matcher.marketdata.wire_strings import ProductStrings

SIDES = (BUY, SELL)

# Shadow of a resting order: [side, price ticks, open lots, priority]
_SIDE, _PRICE, _LOTS, _PRIO = 0, 1, 2, 3


class BookDiff:
    """What one batch changed: `touched`, each level it touched as it was before (None: the
    level did not exist); `moved`, the orders whose level-3 entry changed; `done_lots`, one
    entry per `Done` event in order: the lots the order still rested with, or None when it was
    not resting (the event's own `remaining` then holds)."""

    __slots__ = ("done_lots", "moved", "touched")

    def __init__(self) -> None:
        self.touched: dict[tuple[str, int], tuple[int, int] | None] = {}
        self.moved: set[Hashable] = set()
        self.done_lots: list[int | None] = []


@dataclass(slots=True)
class LevelWrites:
    """The batch's level-2 changes: per side the hash fields to set and to delete, and the feed
    message's `l2` list of `[side, price, size]` ("0": the level is gone), bids first, each
    side in the order the batch first touched its levels."""

    sets: dict[str, dict[str, str]]
    dels: dict[str, list[str]]
    l2: list[list[str]]


class BookShadow:
    """Resting orders (`orders`: id -> [side, price, lots, priority]) and levels (`levels`:
    side -> price ticks -> [lots, number of orders]), all in ticks and lots."""

    def __init__(self) -> None:
        self.orders: dict[Any, list[Any]] = {}
        self.levels: dict[str, dict[int, list[int]]] = {BUY: {}, SELL: {}}

    def reload(self, loaded: LoadedBook) -> None:
        """Rebuild from the book itself (a full publish). Complexity: O(book)."""
        self.orders = {}
        self.levels = {BUY: {}, SELL: {}}
        for side in SIDES:
            side_levels = self.levels[side]
            for p, lots, oid in loaded.book.orders(side):
                live = loaded.live.get(str(oid))
                prio = live.seq if live is not None and live.seq is not None else 0
                self.orders[oid] = [side, p, lots, prio]
                lv = side_levels.get(p)
                if lv is None:
                    side_levels[p] = [lots, 1]
                else:
                    lv[0] += lots
                    lv[1] += 1

    def apply(self, events: Iterable[Any]) -> BookDiff:
        """Follow a batch's events. Complexity: O(events)."""
        diff = BookDiff()
        # Hot loop: locals for what every event touches.
        orders, levels = self.orders, self.levels
        touched, move, done = diff.touched, diff.moved.add, diff.done_lots.append
        o: Any
        lv: Any
        for e in events:
            kind = type(e)
            if kind is Fill:
                o = orders[e.maker_id]
                o[_LOTS] -= e.size
                lv = levels[o[_SIDE]][e.price]
                key = (o[_SIDE], e.price)
                if key not in touched:
                    touched[key] = (lv[0], lv[1])
                lv[0] -= e.size
                move(e.maker_id)
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
                move(e.order_id)
            elif kind is Done:
                o = orders.pop(e.order_id, None)
                if o is None:
                    done(None)
                    continue
                lv = levels[o[_SIDE]][o[_PRICE]]
                key = (o[_SIDE], o[_PRICE])
                if key not in touched:
                    touched[key] = (lv[0], lv[1])
                lv[0] -= o[_LOTS]
                lv[1] -= 1
                move(e.order_id)
                done(o[_LOTS])
            elif kind is Changed:
                o = orders.get(e.order_id)
                if o is not None:
                    o[_LOTS] = e.new_size
                    lv = levels[o[_SIDE]][o[_PRICE]]
                    key = (o[_SIDE], o[_PRICE])
                    if key not in touched:
                        touched[key] = (lv[0], lv[1])
                    lv[0] -= e.old_size - e.new_size
                    move(e.order_id)
        return diff

    def level_writes(self, diff: BookDiff, strings: ProductStrings) -> LevelWrites:
        """The net level changes of `diff`; drops the levels it emptied from the shadow.
        Complexity: O(levels touched)."""
        price, size, levels = strings.prices, strings.sizes, self.levels
        sets: dict[str, dict[str, str]] = {BUY: {}, SELL: {}}
        dels: dict[str, list[str]] = {BUY: [], SELL: []}
        l2: dict[str, list[list[str]]] = {BUY: [], SELL: []}
        for (side, p), was in diff.touched.items():
            lv = levels[side][p]
            if lv[1] == 0:
                del levels[side][p]
                if was is None:
                    continue
                ps = price[p]
                dels[side].append(ps)
                l2[side].append([side, ps, "0"])
            elif was is not None and was[0] == lv[0] and was[1] == lv[1]:
                continue
            else:
                ps = price[p]
                sz = size[lv[0]]
                sets[side][ps] = f"{sz} {lv[1]}"  # market_keys.level_value, inlined: hot path
                l2[side].append([side, ps, sz])
        return LevelWrites(sets, dels, l2[BUY] + l2[SELL])

    def order_writes(
        self, diff: BookDiff, strings: ProductStrings
    ) -> tuple[dict[str, str], list[str]]:
        """The level-3 hash fields to set and to delete for the orders `diff` moved."""
        price, size, orders = strings.prices, strings.sizes, self.orders
        sets: dict[str, str] = {}
        dels: list[str] = []
        for oid in diff.moved:
            o = orders.get(oid)
            if o is None:
                dels.append(str(oid))
            else:
                # market_keys.order_value, inlined: hot path
                sets[str(oid)] = f"{o[_SIDE]} {price[o[_PRICE]]} {size[o[_LOTS]]} {o[_PRIO]}"
        return sets, dels

    def level_hash(self, side: str, strings: ProductStrings) -> dict[str, str]:
        """One side's whole level-2 hash (a full publish)."""
        price, size = strings.prices, strings.sizes
        return {price[p]: level_value(size[lv[0]], lv[1]) for p, lv in self.levels[side].items()}

    def order_hash(self, strings: ProductStrings) -> dict[str, str]:
        """The whole level-3 hash (a full publish)."""
        return {str(oid): self._order_value(o, strings) for oid, o in self.orders.items()}

    def top(self, strings: ProductStrings) -> dict[str, str]:
        """Best bid and ask with their sizes, as the ticker hash holds them ("": no level)."""
        out: dict[str, str] = {}
        for name, side in (("bid", BUY), ("ask", SELL)):
            levels = self.levels[side]
            if not levels:
                out[name] = out[f"{name}_size"] = ""
            else:
                best = max(levels) if side == BUY else min(levels)
                out[name] = strings.prices[best]
                out[f"{name}_size"] = strings.sizes[levels[best][0]]
        return out

    @staticmethod
    def _order_value(o: list[Any], strings: ProductStrings) -> str:
        return order_value(o[_SIDE], strings.prices[o[_PRICE]], strings.sizes[o[_LOTS]], o[_PRIO])
