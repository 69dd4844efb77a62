"""Throughput, latency and memory of the matching engine, and the same workload through two
PyPI engines for comparison.

    python benchmarks/engine.py              # 1,000,000 operations, every build of ours
    python benchmarks/engine.py --ops 100000 --no-peers --build pure

Ours runs as each build in one process: ``compiled`` (the mypyc build, when ``make engine`` has
built it for the current sources) and ``pure`` (book.py as Python); ``ENGINE_PURE=1`` leaves only
``pure``. Every figure names the build it is for.

The workload is generated once with a fixed seed, outside every timed region: 60% limit orders,
30% cancels of uniformly random resting orders, 10% market orders; the mid price is a Gaussian
random walk from 100,000 ticks (sigma 0.25 tick per operation); limit sides 50/50, 10% of them
aggressive (0..5 ticks through the mid), the rest passive at 1 + floor(Exp(mean 10)) ticks from
the mid; sizes uniform 1..100 lots; market orders IOC by size, uniform 1..100 lots.

Choosing a *resting* order to cancel needs the book, so the generator runs the workload through
our engine once as it goes (untimed); every timed run then replays the same list of commands.

What is timed: a loop over prebuilt ``(submit or cancel, argument)`` pairs that calls each one and
counts the events it returns, with the default garbage collector (``--gc freeze|disable`` are for
comparison only). The commands are compacted in memory first (see ``compact``; ``--scattered``
times them as generated). The same loop around a do-nothing function is timed and printed as the
harness's own share. Latency is timed per operation in a separate pass.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import random
import resource
import statistics
import sys
import time
import uuid
from array import array
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matcher.engine
from matcher.engine import BUY, SELL, Done, Opened, Order, OrderBook, compiled

SEED = 20240601
START_MID = 100_000
ACCOUNTS = 1000

# A command: (is_cancel, payload, (side, price, size, kind)) where payload is an Order for ours
# or an order id to cancel; the last part lets the peers build their own order objects.
Command = tuple[bool, Any, tuple[str, int, int, str]]


def generate(n: int, seed: int = SEED) -> tuple[list[Command], dict[str, int]]:
    rng = random.Random(seed)
    book = OrderBook(quote_units_per_tick_lot=1)
    resting: list[Hashable] = []  # uniform choice and O(1) removal: swap with the last
    where: dict[Hashable, int] = {}

    def track(events: list[Any]) -> None:
        for e in events:
            if type(e) is Opened:
                where[e.order_id] = len(resting)
                resting.append(e.order_id)
            elif type(e) is Done and e.order_id in where:
                i = where.pop(e.order_id)
                last = resting.pop()
                if i < len(resting):
                    resting[i] = last
                    where[last] = i

    accounts = [f"acct-{i}" for i in range(ACCOUNTS)]
    commands: list[Command] = []
    counts = {"limit": 0, "aggressive": 0, "cancel": 0, "market": 0, "cancel-empty-book": 0}
    mid = float(START_MID)
    for _ in range(n):
        mid += rng.gauss(0.0, 0.25)
        m = round(mid)
        r = rng.random()
        if r < 0.30:
            if resting:
                oid = resting[rng.randrange(len(resting))]
                counts["cancel"] += 1
            else:
                oid = str(uuid.UUID(int=rng.getrandbits(128)))
                counts["cancel-empty-book"] += 1
            commands.append((True, oid, ("", 0, 0, "cancel")))
            track(book.cancel(oid))
            continue
        oid = str(uuid.UUID(int=rng.getrandbits(128)))
        account = accounts[rng.randrange(ACCOUNTS)]
        side = BUY if rng.random() < 0.5 else SELL
        size = rng.randint(1, 100)
        if r < 0.90:
            counts["limit"] += 1
            if rng.random() < 0.10:
                counts["aggressive"] += 1
                through = rng.randint(0, 5)
                price = m + through if side == BUY else m - through
            else:
                away = 1 + int(rng.expovariate(1 / 10))
                price = m - away if side == BUY else m + away
            order = Order.limit(oid, account, side, price, size)
            commands.append((False, order, (side, price, size, "limit")))
        else:
            counts["market"] += 1
            order = Order.market(oid, account, side, size=size)
            commands.append((False, order, (side, 0, size, "market")))
        track(book.submit(order))
    counts["resting at end"] = len(book)
    return commands, counts


def compact(commands: list[Command]) -> list[Command]:
    """The same commands, rebuilt in one pass so that they lie in memory in operation order.

    Generated in place, the orders are interleaved with the generator's own (freed) book and
    events, so the timed loop may pay cache misses for that; a live matcher reads each order
    just after decoding it, which is closer to the compacted layout. Measured here the effect
    is small (0-7% over paired runs, about the run-to-run noise); ``--scattered`` shows it. The
    copy is exact (a pickle round trip).
    """
    return pickle.loads(pickle.dumps(commands, protocol=pickle.HIGHEST_PROTOCOL))


def calls(book: OrderBook, commands: list[Command]) -> list[tuple[Callable[[Any], list], Any]]:
    """(bound method, argument) per operation, built outside the timed region: the timed loop
    then does nothing but call, as a matcher reading a queue would."""
    submit, cancel = book.submit, book.cancel
    return [(cancel if is_cancel else submit, payload) for is_cancel, payload, _ in commands]


def builds() -> dict[str, type[OrderBook]]:
    """Our builds this process can run, the package's own first."""
    found = {matcher.engine.BUILD: OrderBook}
    if "pure" not in found:
        found["pure"] = compiled.load_pure_copy().OrderBook
    return found


def run_ours(book_class: type[OrderBook], commands: list[Command]) -> tuple[float, int]:
    ops = calls(book_class(quote_units_per_tick_lot=1), commands)
    gc.collect()  # start each run from a clean heap, not with the build of ops half collected
    events = 0
    t0 = time.perf_counter()
    for call, arg in ops:
        events += len(call(arg))  # every operation's events are returned and counted
    return time.perf_counter() - t0, events


def harness_only(commands: list[Command]) -> float:
    """Seconds per operation of the timed loop of run_ours around a do-nothing submit/cancel:
    the part of an operation's time that is the harness (and the call itself)."""
    done = [None]

    def nothing(_arg: Any) -> list[None]:
        return done

    ops = [(nothing, payload) for _, payload, _ in commands]
    gc.collect()
    events = 0
    t0 = time.perf_counter()
    for call, arg in ops:
        events += len(call(arg))
    return (time.perf_counter() - t0) / len(ops)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def latency_pass(
    book_class: type[OrderBook], commands: list[Command]
) -> tuple[array, list[tuple[int, int, int, int]]]:
    book = book_class(quote_units_per_tick_lot=1)
    ops = calls(book, commands)
    gc.collect()
    clock = time.perf_counter_ns
    lat = array("q", bytes(8 * len(commands)))
    n = len(commands)
    marks = {n * k // 4 - 1: k * 25 for k in (1, 2, 3, 4)}
    memory = []
    for i, (call, arg) in enumerate(ops):
        t0 = clock()
        call(arg)
        lat[i] = clock() - t0
        if i in marks:
            queued = sum(
                len(level.orders) for s in (book._bids, book._asks) for level in s.levels.values()
            )
            memory.append((marks[i], rss_kib(), len(book), queued))
    return lat, memory


# ---------------------------------------------------------------- peers


def peer_lightmatchingengine(commands: list[Command]) -> Callable[[], float]:
    from lightmatchingengine.lightmatchingengine import LightMatchingEngine, Side

    def run() -> float:
        lme = LightMatchingEngine()
        add, cancel = lme.add_order, lme.cancel_order
        ids: dict[str, int] = {}
        buy, sell = Side.BUY, Side.SELL
        far_buy, far_sell = 10 * START_MID, 1
        t0 = time.perf_counter()
        for is_cancel, payload, (side, price, size, kind) in commands:
            if is_cancel:
                lid = ids.pop(payload, None)
                if lid is not None:
                    cancel(lid, "X")
            elif kind == "limit":
                order, _ = add("X", price, size, buy if side == BUY else sell)
                if order.leaves_qty:
                    ids[payload.id] = order.order_id
            else:
                # No market orders: an IOC at a price that crosses everything, then cancel.
                order, _ = add(
                    "X", far_buy if side == BUY else far_sell, size, buy if side == BUY else sell
                )
                if order.leaves_qty:
                    cancel(order.order_id, "X")
        return time.perf_counter() - t0

    return run


def peer_pyorderbook(commands: list[Command]) -> Callable[[], float]:
    import logging

    from pyorderbook import Book, ask, bid

    logging.getLogger("pyorderbook").setLevel(logging.WARNING)
    logging.getLogger("pyorderbook.book").setLevel(logging.WARNING)

    def run() -> float:
        # Its Order objects are mutable and build a uuid4 and a Decimal: make them untimed.
        orders: list[Any] = []
        for _is_cancel, _payload, (side, price, size, kind) in commands:
            if kind == "limit":
                orders.append((bid if side == BUY else ask)("X", price, size))
            elif kind == "market":
                far = 10 * START_MID if side == BUY else 1
                orders.append((bid if side == BUY else ask)("X", far, size))
            else:
                orders.append(None)
        book = Book()
        match, cancel = book.match, book.cancel
        live: dict[str, Any] = {}
        t0 = time.perf_counter()
        for (is_cancel, payload, (_side, _p, _s, kind)), order in zip(
            commands, orders, strict=True
        ):
            if is_cancel:
                theirs = live.pop(payload, None)
                if theirs is not None and theirs.quantity:
                    cancel(theirs)
            else:
                match(order)
                if order.quantity:
                    if kind == "limit":
                        live[payload.id] = order
                    else:
                        cancel(order)
        return time.perf_counter() - t0

    return run


# ---------------------------------------------------------------- main


def percentile(sorted_values: list[int], p: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def measure(build: str, book_class: type[OrderBook], commands: list[Command], runs: int) -> float:
    """Throughput, harness share, latency and memory of one build of ours; returns ops/s."""
    n = len(commands)
    run_ours(book_class, commands[: min(n, 50_000)])  # warm-up
    timings = []
    for _ in range(runs):
        seconds, events = run_ours(book_class, commands)
        timings.append(seconds)
        gc.collect()
    ours = n / statistics.median(timings)
    print(
        f"ours ({build}): {ours:,.0f} ops/s (median of {runs}; best {n / min(timings):,.0f}), "
        f"{events:,} events per run"
    )
    harness = min(harness_only(commands) for _ in range(runs))
    print(
        f"  harness alone (same loop, do-nothing submit/cancel): {harness * 1e9:.0f} ns/op, "
        f"{harness * ours:.0%} of our time per op"
    )
    lat, memory = latency_pass(book_class, commands)
    values = sorted(lat)
    del lat
    print(
        f"  latency per op ({build}): "
        f"p50 {percentile(values, 50) / 1000:.2f} us, p99 {percentile(values, 99) / 1000:.2f} us,"
        f" p99.9 {percentile(values, 99.9) / 1000:.2f} us, max {values[-1] / 1000:.0f} us"
    )
    print("  memory during the latency pass (RSS includes the pre-generated workload):")
    for pct, kib, resting, queued in memory:
        print(
            f"    {pct:3d}%: RSS {kib / 1024:7.1f} MiB, resting orders {resting:,},"
            f" queue entries incl. lazily cancelled {queued:,}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"  peak RSS of the process so far {peak / 1024:.1f} MiB")
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer-runs", type=int, default=1)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--build", choices=("all", "compiled", "pure"), default="all", help="which of ours to run"
    )
    parser.add_argument(
        "--gc",
        choices=("default", "freeze", "disable"),
        default="default",
        help="collector setting for every timed run (the headline figure is 'default')",
    )
    parser.add_argument(
        "--scattered", action="store_true", help="time the workload as generated, not compacted"
    )
    args = parser.parse_args()

    print(f"CPython {sys.version.split()[0]} on {os.cpu_count()} cores, {args.ops:,} operations")
    t0 = time.perf_counter()
    commands, counts = generate(args.ops)
    print(f"workload generated in {time.perf_counter() - t0:.1f} s (untimed): {counts}")
    if not args.scattered:
        commands = compact(commands)
    gc.collect()
    if args.gc == "freeze":
        gc.freeze()
    elif args.gc == "disable":
        gc.disable()
    print(
        f"collector: {args.gc}; workload layout: {'scattered' if args.scattered else 'compacted'}"
    )

    ours: dict[str, float] = {}
    available = builds()
    if args.build != "all":
        if args.build not in available:
            sys.exit(f"no {args.build} build to run (matcher.engine: {matcher.engine.BUILD})")
        available = {args.build: available[args.build]}
    for build, book_class in available.items():
        ours[build] = measure(build, book_class, commands, args.runs)

    if args.no_peers:
        return
    for name, factory in (
        ("lightmatchingengine 2019.1.4", peer_lightmatchingengine),
        ("pyorderbook 0.4.9", peer_pyorderbook),
    ):
        try:
            run = factory(commands)
            seconds = statistics.median(run() for _ in range(args.peer_runs))
        except Exception as exc:  # a peer that cannot be installed or run is reported, not fatal
            print(f"{name}: not measured ({type(exc).__name__}: {exc})")
            continue
        theirs = args.ops / seconds
        ratios = ", ".join(f"ours {build}/peer = {v / theirs:.2f}x" for build, v in ours.items())
        print(f"{name}: {theirs:,.0f} ops/s; {ratios}")
    print(
        "peers: limit/cancel only (no events, STP or fees); a market order is sent to them as a"
        " limit at a price crossing the whole book, its remainder cancelled."
    )


if __name__ == "__main__":
    main()
