"""A deliberately naive matching engine, the oracle for the differential tests.

Written from the rules, not from ``matcher.engine``: one flat list of resting orders, a linear
scan for the best one at every step, ``Fraction`` and ``math.ceil`` for fees, a copy of the
whole state to try a FOK order and put everything back if it does not fill. Slow and obviously
right is the point. Events are plain tuples ``(kind, seq, ...)`` laid out like the engine's
NamedTuples, so ``(type(e).__name__, *e)`` of an engine event compares equal.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any


class ReferenceBook:
    def __init__(
        self,
        quote_units_per_tick_lot: int,
        min_size_lots: int = 1,
        maker_fee: Fraction = Fraction(1, 1000),
        taker_fee: Fraction = Fraction(2, 1000),
        min_funds: int = 1,
    ) -> None:
        self.q = quote_units_per_tick_lot
        self.min_size = min_size_lots
        self.min_funds = min_funds
        self.maker_rate = Fraction(maker_fee)
        self.taker_rate = Fraction(taker_fee)
        self.seq = 0
        self.resting: list[dict[str, Any]] = []  # every resting order, any side, any order
        self.out: list[tuple[Any, ...]] = []

    # -- helpers ---------------------------------------------------------------------------

    def emit(self, kind: str, *fields: Any) -> None:
        self.seq += 1
        self.out.append((kind, self.seq, *fields))

    def best_maker(self, taker_side: str, limit: int | None) -> dict[str, Any] | None:
        best = None
        for o in self.resting:
            if o["side"] == taker_side:
                continue
            if limit is not None:
                if taker_side == "buy" and o["price"] > limit:
                    continue
                if taker_side == "sell" and o["price"] < limit:
                    continue
            if best is None:
                best = o
                continue
            if taker_side == "buy":
                better = (o["price"], o["priority"]) < (best["price"], best["priority"])
            else:
                better = (-o["price"], o["priority"]) < (-best["price"], best["priority"])
            if better:
                best = o
        return best

    def remove(self, order: dict[str, Any]) -> None:
        self.resting = [o for o in self.resting if o is not order]

    def reject(self, t: dict[str, Any], message: str) -> None:
        price = t["price"] if t["type"] == "limit" else None
        self.emit(
            "Done", t["id"], t["account"], t["side"], price, "rejected", message,
            t["size"], t["funds"],
        )  # fmt: skip

    def fee(self, notional: int, rate: Fraction) -> int:
        return math.ceil(notional * rate)

    # -- commands --------------------------------------------------------------------------

    def cancel(self, order_id: Any) -> list[tuple[Any, ...]]:
        self.out = []
        for o in self.resting:
            if o["id"] == order_id:
                self.remove(o)
                self.emit(
                    "Done", o["id"], o["account"], o["side"], o["price"], "canceled", "",
                    o["size"], None,
                )  # fmt: skip
                return self.out
        return [("CancelRejected", order_id, "not found")]

    def submit(self, order: Any) -> list[tuple[Any, ...]]:
        self.out = []
        t = {
            "id": order.id, "account": order.account, "side": order.side, "type": order.type,
            "price": order.price, "size": order.size, "funds": order.funds,
            "tif": order.time_in_force, "post_only": order.post_only, "stp": order.stp,
        }  # fmt: skip
        limit = t["type"] == "limit"
        problem = self.limit_problem(t) if limit else self.market_problem(t)
        if problem:
            self.reject(t, problem)
            return self.out
        if t["type"] == "limit" and t["post_only"]:
            if self.best_maker(t["side"], t["price"]) is not None:
                self.reject(t, "post only")
                return self.out
            self.rest(t)
            return self.out
        if t["type"] == "limit" and t["tif"] == "FOK":
            saved = ([dict(o) for o in self.resting], self.seq)
            ended, filled = self.match(dict(t, tif="IOC"))
            self.resting, self.seq = saved
            self.out = []
            if not (ended == "filled" and filled == t["size"]):
                self.reject(t, "fok not filled")
                return self.out
            self.match(t)
            self.emit("Done", t["id"], t["account"], t["side"], t["price"], "filled", "", 0, None)
            return self.out
        ended, filled = self.match(t)
        if ended == "stopped":
            return self.out
        if t["type"] == "limit":
            if t["size"] == 0:
                self.emit(
                    "Done", t["id"], t["account"], t["side"], t["price"], "filled", "", 0, None
                )
            elif t["tif"] == "GTC":
                self.rest(t)
            else:
                self.emit(
                    "Done", t["id"], t["account"], t["side"], t["price"], "canceled", "ioc",
                    t["size"], None,
                )  # fmt: skip
            return self.out
        if t["size"] == 0:
            reason, message = "filled", ""
        elif ended == "budget":
            reason, message = ("filled", "") if filled else ("rejected", "funds too small")
        else:
            reason, message = "canceled", "no liquidity"
        self.emit(
            "Done", t["id"], t["account"], t["side"], None, reason, message, t["size"], t["funds"]
        )
        return self.out

    def limit_problem(self, t: dict[str, Any]) -> str | None:
        if t["side"] not in ("buy", "sell"):
            return "invalid side"
        if not isinstance(t["price"], int) or t["price"] < 1:
            return "invalid price"
        if not isinstance(t["size"], int) or t["size"] < self.min_size:
            return "size too small"
        if t["tif"] not in ("GTC", "IOC", "FOK"):
            return "invalid time in force"
        if t["stp"] not in ("dc", "co", "cn", "cb"):
            return "invalid stp"
        if t["funds"] is not None:
            return "funds only for market orders"
        if t["post_only"] and t["tif"] != "GTC":
            return "post only requires GTC"
        return None

    def market_problem(self, t: dict[str, Any]) -> str | None:
        if t["type"] != "market":
            return "invalid order type"
        if t["side"] not in ("buy", "sell"):
            return "invalid side"
        if t["size"] is None and t["funds"] is None:
            return "size or funds required"
        if t["size"] is not None and t["size"] < self.min_size:
            return "size too small"
        if t["funds"] is not None and t["side"] != "buy":
            return "funds only for market buys"
        if t["funds"] is not None and t["funds"] < self.min_funds:
            return "funds too small"
        if t["stp"] not in ("dc", "co", "cn", "cb"):
            return "invalid stp"
        if t["price"] is not None:
            return "price not allowed on market orders"
        if t["post_only"]:
            return "post only requires limit"
        return None

    def rest(self, t: dict[str, Any]) -> None:
        self.seq += 1
        self.resting.append({
            "id": t["id"], "account": t["account"], "side": t["side"], "price": t["price"],
            "size": t["size"], "stp": t["stp"], "priority": self.seq,
        })  # fmt: skip
        self.out.append(("Opened", self.seq, t["id"], t["account"], t["side"], t["price"],
                         t["size"]))  # fmt: skip

    def affordable(self, funds: int, price: int, cap: int) -> int:
        n = cap
        while n > 0:
            notional = price * n * self.q
            if notional + self.fee(notional, self.taker_rate) <= funds:
                return n
            n -= 1
        return 0

    def match(self, t: dict[str, Any]) -> tuple[str, int]:
        """Take liquidity; returns (how it ended, lots filled). Mutates t's size and funds."""
        filled = 0
        stp = t["stp"]
        if stp == "dc" and t["size"] is None:
            stp = "cn"
        limit = t["price"] if t["type"] == "limit" else None
        taker_price = limit
        while t["size"] is None or t["size"] > 0:
            m = self.best_maker(t["side"], limit)
            if m is None:
                return "book", filled
            if m["account"] == t["account"]:
                cancel_maker = stp in ("co", "cb")
                cancel_taker = stp in ("cn", "cb")
                if stp == "dc":
                    if t["size"] < m["size"]:
                        self.emit("Changed", m["id"], m["account"], m["side"], m["price"],
                                  m["size"], m["size"] - t["size"], "self_trade")  # fmt: skip
                        m["size"] -= t["size"]
                        cancel_taker = True
                    elif t["size"] == m["size"]:
                        cancel_maker = cancel_taker = True
                    else:
                        self.emit("Changed", t["id"], t["account"], t["side"], taker_price,
                                  t["size"], t["size"] - m["size"], "self_trade")  # fmt: skip
                        t["size"] -= m["size"]
                        cancel_maker = True
                if cancel_maker:
                    self.remove(m)
                    self.emit("Done", m["id"], m["account"], m["side"], m["price"],
                              "self_trade", stp, m["size"], None)  # fmt: skip
                if cancel_taker:
                    self.emit("Done", t["id"], t["account"], t["side"], taker_price,
                              "self_trade", stp, t["size"], t["funds"])  # fmt: skip
                    return "stopped", filled
                continue
            n = m["size"] if t["size"] is None else min(m["size"], t["size"])
            if t["funds"] is not None:
                n = self.affordable(t["funds"], m["price"], n)
                if n == 0:
                    return "budget", filled
            notional = m["price"] * n * self.q
            maker_fee = self.fee(notional, self.maker_rate)
            taker_fee = self.fee(notional, self.taker_rate)
            self.emit("Fill", m["id"], t["id"], m["account"], t["account"], m["price"], n,
                      notional, maker_fee, taker_fee, t["side"])  # fmt: skip
            filled += n
            if t["funds"] is not None:
                t["funds"] -= notional + taker_fee
            if t["size"] is not None:
                t["size"] -= n
            m["size"] -= n
            if m["size"] == 0:
                self.remove(m)
                self.emit("Done", m["id"], m["account"], m["side"], m["price"], "filled", "",
                          0, None)  # fmt: skip
        return "filled", filled

    # -- queries ---------------------------------------------------------------------------

    def l3(self, side: str) -> list[tuple[int, int, Any]]:
        mine = [o for o in self.resting if o["side"] == side]
        if side == "buy":
            mine.sort(key=lambda o: (-o["price"], o["priority"]))
        else:
            mine.sort(key=lambda o: (o["price"], o["priority"]))
        return [(o["price"], o["size"], o["id"]) for o in mine]
