"""End-to-end throughput of the order path: orders accepted over HTTP by the local API, and how
fast the matcher settles a pre-filled queue, against how fast the SQS endpoint alone drains.

    python benchmarks/e2e.py                    # 3,000 orders per product
    python benchmarks/e2e.py --orders 1000 --no-http --merge 3

0. HTTP: signed POST /orders on one product accepted per second by `chalice local`
   (benchmarks/api.py, 4 client threads), against GET /time on the same server as baseline.

Uses the local services (DATABASE_URL / REDIS_URL / AWS_ENDPOINT_URL or the defaults, started
if missing) with a database and queue prefix of its own, dropped afterwards. Figures:

1. bare SQS: receive(10) + DeleteMessageBatch of N pre-filled messages in one loop, no
   processing, with the matcher's own SQS client (sqs_wire.py; boto3's loop is printed too),
   measured before and after each of the matcher's one-product drains (LocalStack drifts; the
   mean of the two is that drain's baseline), after a warm-up; `--repeat` drains,
   and the run with the median ratio is reported in full. Also the matcher's own SQS process
   (its receivers, credit and deletes) with no settler; with a stand-in settler that waits 3 ms
   per batch without CPU (a serial stage as long as the real settle, spent waiting as for a
   commit): what the pipeline allows when the work runs elsewhere, as Postgres and Redis do in
   production; and with one that spins 4 ms of CPU per batch: what it allows a matcher whose
   work costs that much CPU here, beside LocalStack. And two bare loops at once against one: how
   much the endpoint gains from concurrent calls (LocalStack: none, it serves one at a time).
2. matcher, one product: N orders (limit orders around one price, about half of them crossing,
   a cancel every tenth) from 50 accounts, placed as the API places them, pre-filled, then
   drained by the matcher; orders/s from its first receive to its last delete. Per settled
   batch (one transaction), p50/p99 of: settle = match + write/commit (+ load, only when the
   reader's prefetch could not be used), the settler's serial stage; excluding SQS = all the
   batch's work: the reader's prefetch of its orders + settle + the Redis publish (prefetch and
   publish run on other threads, overlapped with other batches); including SQS = + receive +
   delete. And the share of the drain the settler spent waiting for a received batch: when it
   is high, the matcher waits on SQS, not SQS on the matcher.
3. the same with three products at once (one pipeline each).
4. the matcher under a steady flow (`--steady` orders/s for `--steady-seconds`, 10 by default;
   the rate by default half the median one-product drain's, so about half its capacity on this
   machine) instead of a backlog: the same per-batch cycle figures when the machine is not
   saturated, and each order's latency from its send returning (the API answering) to its
   batch's commit and to its market data on the feed.
5. settling alone: the one-product drain's kind of orders placed, then settled batch by batch
   of 10 (`settle_batch`: load, match and the batch's one statement with its commit) on one
   connection, with no SQS, no Redis and no other thread: the settler's cost per batch when it
   has the machine to itself (its CPU, its Postgres backend's CPU, and the wall time).
The ratio matcher/bare is the share of the queue's own rate the matcher keeps.

6. CPU ms per 10 messages, per party (cpu_meter.py, Linux): the matcher's process, its SQS
   process, Postgres, LocalStack, Redis, during the median one-product drain and during the bare
   loops. Where the SQS endpoint shares the machine's cores with the matcher and Postgres, the
   matcher can only drain as fast as all of their CPU per message fits on those cores, while
   the bare loop has them to itself: this is what the ratio is made of. And the whole machine's
   CPU time over the same windows: busy, idle, and stolen by the hypervisor (a VM on a shared
   host: a run it took much from runs slower throughout, so compare figures within one run).
   From these, the drain's CPU ceiling: its rate if every core were busy all the time, as a
   share of the bare loop, and the CPU per 10 messages that a ratio of 80% allows at most.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # before the logger is created

import psycopg

from benchmarks.cpu_meter import CpuMeter, backend_cpu, machine_line
from chalicelib.core import balances, catalog
from chalicelib.core.money import to_units
from chalicelib.messaging import order_queue, queues
from chalicelib.messaging.order_queue import QueueMessage
from chalicelib.messaging.sqs import message_client, sqs_client
from chalicelib.messaging.sqs_wire import SqsWire
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import Settings
from matcher import books
from matcher.coordinator import Matcher
from matcher.faults import Faults
from matcher.options import Options
from matcher.settlement import Received, key_lookups_only, settle_batch
from matcher.sqs_io import SqsProcess
from matcher.stats import Cycle, Stats
from ops import migrations, services

MIDS = {"BTC-USD": "30000.00", "ETH-USD": "2000.00", "ETH-BTC": "0.06667"}
SIZES = {"BTC-USD": "0.001", "ETH-USD": "0.01", "ETH-BTC": "0.1"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup() -> tuple[Settings, str]:
    state = services.STATE_DIR
    pg, rd, sq = (f(state) for f in (services.postgres, services.redis, services.sqs))
    url = pg.url.rsplit("/", 1)[0] + f"/exchange_bench_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(url)
    migrations.migrate_up(url)
    migrations.seed(url)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    cfg = Settings("local", url, rd.url, sq.url, "us-east-1", prefix)
    queues.ensure_queues(sqs_client(cfg), queues.queue_specs(prefix, list(catalog.PRODUCTS)))
    return cfg, url


def drop(cfg: Settings, url: str) -> None:
    r = redis_client(cfg.redis_url)
    keys = list(r.scan_iter(match=f"md:{cfg.queue_prefix}:*", count=1000))
    if keys:
        r.delete(*keys)
    sqs = sqs_client(cfg)
    queues.delete_queues(sqs, queues.queue_specs(cfg.queue_prefix, list(catalog.PRODUCTS)))
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def send_all(sqs: object, url: str, messages: list[QueueMessage]) -> None:
    for i in range(0, len(messages), 10):
        failed = order_queue.send_batch(sqs, url, messages[i : i + 10])
        assert not failed, failed


def fill(cfg: Settings, conn: psycopg.Connection, product_id: str, n: int, seed: int) -> int:
    """n commands for one product, placed exactly as the API does, then sent; returns how many
    distinct messages that is (a repeated cancel has the same dedup id: SQS keeps one)."""
    messages = place(conn, product_id, n, seed)
    send_all(sqs_client(cfg), order_queue.queue_url(sqs_client(cfg), cfg, product_id), messages)
    return len({msg.dedup_id for msg in messages})


def place(conn: psycopg.Connection, product_id: str, n: int, seed: int) -> list[QueueMessage]:
    """n commands for one product from 50 new accounts, the orders placed in Postgres exactly as
    the API places them; returns their messages, not sent."""
    p = catalog.PRODUCTS[product_id]
    rng = random.Random(seed)
    users = []
    for _ in range(50):
        uid = str(uuid.uuid4())
        with conn.transaction():
            conn.execute(
                "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, 'x')",
                (uid, f"{uid}@bench"),
            )
            balances.open_accounts(conn, uid)
            for asset in (p.base.id, p.quote.id):
                amount = to_units(Decimal("1000000"), catalog.ASSETS[asset].exponent)
                did = str(uuid.uuid4())
                conn.execute(
                    """INSERT INTO deposits (id, user_id, asset, amount, status, completed_at)
                       VALUES (%s, %s, %s, %s, 'completed', now())""",
                    (did, uid, asset, amount),
                )
                balances.credit(
                    conn, uid, asset, amount, "transfer", balances.LedgerRef(transfer_id=did)
                )
        users.append(uid)
    mid = to_units(Decimal(MIDS[product_id]), p.quote.exponent) // p.quote_units_per_tick
    lots = to_units(Decimal(SIZES[product_id]), p.base.exponent) // p.base_units_per_lot
    messages: list[QueueMessage] = []
    placed: list[tuple[str, str]] = []
    for i in range(n):
        if i % 10 == 9 and placed:
            oid, owner = rng.choice(placed)
            messages.append(QueueMessage("cancel", oid, product_id, owner))
            continue
        side = rng.choice(("buy", "sell"))
        # within 5 ticks either side of the mid: about half the orders cross something
        ticks = mid + rng.randint(-5, 5)
        size = lots * rng.randint(1, 5)
        asset, amount = (
            (p.quote.id, p.limit_buy_hold(ticks, size))
            if side == "buy"
            else (p.base.id, size * p.base_units_per_lot)
        )
        oid, user = str(uuid.uuid4()), rng.choice(users)
        with conn.transaction():
            balances.place_hold(conn, user, asset, amount)
            conn.execute(
                """INSERT INTO orders (id, user_id, product_id, side, type, price, size,
                     hold_asset, hold_amount) VALUES (%s, %s, %s, %s, 'limit', %s, %s, %s, %s)""",
                (
                    oid,
                    user,
                    product_id,
                    side,
                    ticks * p.quote_units_per_tick,
                    size * p.base_units_per_lot,
                    asset,
                    amount,
                ),
            )
        placed.append((oid, user))
        messages.append(QueueMessage("order", oid, product_id, user))
    return messages


def steady(
    cfg: Settings,
    conn: psycopg.Connection,
    product_id: str,
    rate: int,
    seconds: float,
    options: Options,
) -> tuple[list[Cycle], Latency]:
    """The matcher under a steady flow of `rate` orders/s (batches of 10 sent on a clock) rather
    than a backlog: the per-batch cycle when the machine is not saturated, and each order's
    latency from its send. The sends come from a process of their own, as the API's do: in the
    matcher's process their CPU would hold its GIL."""
    messages = place(conn, product_id, int(rate * seconds), 99)
    distinct = len({msg.dedup_id for msg in messages})
    url = order_queue.queue_url(sqs_client(cfg), cfg, product_id)
    m = Matcher(cfg, [product_id], options, Faults(None))
    thread = threading.Thread(target=m.run, daemon=True)
    thread.start()
    # From 3 s on: the product is owned and its SQS process has started (perf_counter is
    # CLOCK_MONOTONIC, the same clock in both processes).
    ctx = multiprocessing.get_context("spawn")
    receiving, sending = ctx.Pipe(duplex=False)
    sender = ctx.Process(
        target=send_paced, args=(cfg, url, messages, rate, time.perf_counter() + 3, sending)
    )
    sender.start()
    sending.close()
    stats = finish(m, thread, distinct, 120)
    sent_at: dict[str, float] = receiving.recv()
    sender.join()
    assert sender.exitcode == 0, "the sender failed"
    cycles = [c for s in stats for c in s.cycles]
    latency = Latency([], [])
    for c in cycles:
        for dedup_id in c.dedup_ids:
            t = sent_at.get(dedup_id)
            if t is not None:
                latency.committed.append((c.committed_at - t) * 1000)
                latency.published.append((c.published_at - t) * 1000)
    return cycles, latency


@dataclass
class Latency:
    """Per order, ms from the moment its send to the queue returned (the API answering) to its
    batch's commit (visible in the REST API), and to its market data being published (the feed)."""

    committed: list[float]
    published: list[float]


def send_paced(
    cfg: Settings,
    url: str,
    messages: list[QueueMessage],
    rate: int,
    start: float,
    report: Any,
) -> None:
    """Send the messages in batches of 10 on a clock, with the API's client; report when each
    send returned."""
    sqs = message_client(cfg)
    sent_at: dict[str, float] = {}
    time.sleep(max(0.0, start - time.perf_counter()))
    due = time.perf_counter()
    for i in range(0, len(messages), 10):
        batch = messages[i : i + 10]
        assert not order_queue.send_batch(sqs, url, batch)
        now = time.perf_counter()
        for msg in batch:
            sent_at.setdefault(msg.dedup_id, now)  # a repeated cancel: SQS keeps the first
        due += 10 / rate
        time.sleep(max(0.0, due - time.perf_counter()))
    report.send(sent_at)
    report.close()


def bare_queue(cfg: Settings, n: int) -> tuple[list[queues.QueueSpec], str]:
    """A queue of its own holding n messages spread over the groups as fill()'s are."""
    sqs = sqs_client(cfg)
    spec = queues.queue_specs(f"{cfg.queue_prefix}bare{uuid.uuid4().hex[:6]}", ["BTC-USD"])
    url = queues.ensure_queues(sqs, spec)["BTC-USD"]
    users = [str(uuid.uuid4()) for _ in range(50)]
    rng = random.Random(0)
    send_all(
        sqs,
        url,
        [QueueMessage("order", str(uuid.uuid4()), "BTC-USD", rng.choice(users)) for _ in range(n)],
    )
    return spec, url


def bare(
    cfg: Settings,
    n: int,
    cpu: dict[str, float] | None = None,
    client: str = "wire",
    machine: dict[str, float] | None = None,
    loops: int = 1,
) -> float:
    """Messages/s of receive(10) + DeleteMessageBatch in one loop on a pre-filled queue, no
    processing: the baseline. `cpu`, if given, gets the CPU seconds per party and `machine`
    the whole machine's (cpu_meter.py). client: "wire", the matcher's own SQS client
    (sqs_wire.py), or "boto3". `loops`: that many such loops at once, on threads, counted until
    the last delete (a loop that found the queue empty waits out its long poll)."""
    spec, url = bare_queue(cfg, n)
    calls: Any = SqsWire(cfg, connections=loops + 1) if client == "wire" else sqs_client(cfg)
    got = 0
    last = 0.0
    lock = threading.Lock()

    def loop() -> None:
        nonlocal got, last
        while True:
            with lock:
                if got >= n:
                    return
            msgs = calls.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            msgs = msgs.get("Messages", [])
            if msgs:
                calls.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(msgs)
                    ],
                )
                with lock:
                    got += len(msgs)
                    last = time.perf_counter()

    start = time.perf_counter()
    with CpuMeter(database_name(cfg)) as meter:
        if loops == 1:
            loop()
        else:
            threads = [threading.Thread(target=loop) for _ in range(loops)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    rate = n / (last - start)
    if cpu is not None:
        for party, seconds in meter.seconds().items():
            cpu[party] = cpu.get(party, 0.0) + seconds
    if machine is not None:
        for kind, seconds in meter.machine().items():
            machine[kind] = machine.get(kind, 0.0) + seconds
    if isinstance(calls, SqsWire):
        calls.close()
    queues.delete_queues(sqs_client(cfg), spec)
    return rate


def pipeline(
    cfg: Settings, n: int, options: Options, burn_ms: float, wait_ms: float = 0.0
) -> float:
    """Messages/s through the matcher's own SQS process (sqs_io.py: its receivers, credit and
    deletes) with a stand-in for the settler that, per batch, sleeps `wait_ms` (no CPU, as the
    settler waits for its commit) and then spins `burn_ms` of CPU in this process (0, 0: no
    settler). What the pipeline allows the matcher when its serial stage takes that long, and
    when its work costs that much CPU on this machine's cores, beside LocalStack."""
    spec, url = bare_queue(cfg, n)
    credit = max(options.prefetch, options.receivers)
    sqs = SqsProcess(cfg, url, options.receivers, options.wait_s, credit)
    deleted = 0
    sizes: dict[int, int] = {}  # delete token -> messages
    start: float | None = None
    while deleted < n:
        message = sqs.recv()
        assert message is not None, "the SQS process ended"
        if message[0] == "batch":
            start = start or message[2]
            sqs.send("credit", 1)
            if wait_ms:
                time.sleep(wait_ms / 1000)
            until = time.perf_counter() + burn_ms / 1000
            while time.perf_counter() < until:
                pass
            sizes[len(sizes)] = len(message[1])
            sqs.send("delete", len(sizes) - 1, [m["ReceiptHandle"] for m in message[1]])
        elif message[0] == "deleted":
            assert not message[4], message[4]
            deleted += sizes[message[1]]
        elif message[0] == "error":
            raise RuntimeError(f"the SQS process failed: {message[1]}")
    assert start is not None
    rate = n / (time.perf_counter() - start)
    sqs.send("stop")
    while (message := sqs.recv()) is not None and message[0] != "stopped":
        pass
    sqs.close()
    queues.delete_queues(sqs_client(cfg), spec)
    return rate


def finish(m: Matcher, thread: threading.Thread, messages: int, timeout_s: float) -> list[Stats]:
    """Wait until the matcher has settled and deleted `messages`, stop it, return its stats."""
    deadline = time.monotonic() + timeout_s
    while sum(s.messages for s in m.all_stats().values()) < messages:
        if m.stopping.is_set() or time.monotonic() > deadline:
            raise RuntimeError(f"matcher stopped: {m.error!r}")
        time.sleep(0.05)
    stats = list(m.all_stats().values())
    m.stop()
    thread.join()
    return stats


@dataclass
class Drained:
    rate: float  # orders/s
    cycles: list[Cycle]  # the settled batches' timings
    trades: int
    starved: float  # the share of the drain the settlers waited for a received batch
    cpu: dict[str, float]  # CPU seconds per party (cpu_meter.py) over the drain
    machine: dict[str, float]  # the whole machine's CPU seconds: busy, stolen, idle


def drain(cfg: Settings, products: list[str], total: int, options: Options) -> Drained:
    m = Matcher(cfg, products, options, Faults(None))
    with CpuMeter(database_name(cfg)) as meter:
        thread = threading.Thread(target=m.run, daemon=True)
        thread.start()
        stats = finish(m, thread, total, 600)
    start = min(s.first_at for s in stats if s.first_at is not None)
    end = max(s.last_at for s in stats if s.last_at is not None)
    return Drained(
        total / (end - start),
        [c for s in stats for c in s.cycles],
        sum(s.trades for s in stats),
        sum(s.starved for s in stats) / len(stats) / (end - start),
        meter.seconds(start, end),
        meter.machine(start, end),
    )


def settle_alone(conn: psycopg.Connection, product_id: str, n: int, seed: int) -> None:
    """Print the settler's cost per batch with the machine to itself: no SQS, Redis or threads."""
    messages = place(conn, product_id, n, seed)
    key_lookups_only(conn)
    loaded = books.load(conn, product_id)
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert backend is not None
    times: list[float] = []
    cpu, pg = time.thread_time(), backend_cpu(int(backend[0]))
    start = time.perf_counter()
    for i in range(0, len(messages), 10):
        batch = [Received(str(uuid.uuid4()), m) for m in messages[i : i + 10]]
        t = time.perf_counter()
        settle_batch(conn, loaded, batch)
        times.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - start
    cpu, pg = time.thread_time() - cpu, backend_cpu(int(backend[0])) - pg
    print(
        f"settling alone (one connection; no SQS, Redis or other threads): "
        f"{len(messages) / wall:,.0f} orders/s; per batch of 10: settle p50 {pct(times, 0.5):.2f} "
        f"ms, p99 {pct(times, 0.99):.2f} ms; CPU: the settler {cpu / len(times) * 1000:.2f} ms, "
        f"its Postgres backend {pg / len(times) * 1000:.2f} ms"
    )


def database_name(cfg: Settings) -> str:
    return cfg.database_url.rsplit("/", 1)[1]


def cpu_line(seconds: dict[str, float], batches: float, names: dict[str, str]) -> str:
    """CPU ms per batch of 10 messages, per party."""
    if not seconds:
        return "n/a (no /proc here)"
    parts = [
        f"{names.get(k, k)} {v * 1000 / batches:.1f}"
        for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])
        if v > 0
    ]
    total = sum(seconds.values()) * 1000 / batches
    return f"{', '.join(parts)}; {total:.1f} in all (on {os.cpu_count()} cores)"


def report(name: str, d: Drained) -> None:
    rate, cycles, trades, starved = d.rate, d.cycles, d.trades, d.starved
    settle = [c.settle * 1000 for c in cycles]
    proc = [c.processing * 1000 for c in cycles]
    full = [(c.processing + c.receive + c.delete) * 1000 for c in cycles]
    parts = {
        k: statistics.median(getattr(c, k) * 1000 for c in cycles)
        for k in ("receive", "prefetch", "queued", "load", "match", "write", "publish", "delete")
    }
    print(f"{name}: {rate:,.0f} orders/s settled ({len(cycles)} batches, {trades} trades)")
    print(
        f"  settle (load+match+write)  p50 {pct(settle, 0.5):6.2f} ms  p99 "
        f"{pct(settle, 0.99):6.2f} ms   (batch of "
        f"{statistics.mean(c.messages for c in cycles):.1f} messages on average)"
    )
    print(
        f"  cycle excl. SQS (all work) p50 {pct(proc, 0.5):6.2f} ms  p99 {pct(proc, 0.99):6.2f} ms"
    )
    print(
        f"  cycle incl. SQS            p50 {pct(full, 0.5):6.2f} ms  p99 {pct(full, 0.99):6.2f} ms"
    )
    print("  median parts ms: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    print(f"  the settler waited for a received batch {starved:.0%} of the drain")
    batches = sum(c.messages for c in cycles) / 10
    print("  CPU ms per 10 messages: " + cpu_line(d.cpu, batches, {}))
    print("  the machine during the drain: " + machine_line(d.machine))
    if cycles and cycles[0].detail:
        keys = sorted({k for c in cycles for k in c.detail})
        med = {k: statistics.median(c.detail.get(k, 0.0) * 1000 for c in cycles) for k in keys}
        print("  write parts ms: " + ", ".join(f"{k[2:]} {v:.2f}" for k, v in med.items()))


def ceiling(d: Drained, bare_rate: float) -> None:
    """What the drain's CPU per message allows at best: the rate if every core were busy all
    the time. A ratio above ceiling / bare cannot come from removing waits, only from less CPU
    per message (any party's: LocalStack, Postgres and Redis share the cores)."""
    cores = os.cpu_count() or 1
    messages = sum(c.messages for c in d.cycles)
    seconds = sum(d.cpu.values())
    if not messages or not seconds:
        return
    best = cores * messages / seconds
    need = cores * 10_000 / (0.8 * bare_rate)  # CPU ms per 10 messages at 80% of the bare loop
    print(
        f"  the drain's CPU ceiling: {best:,.0f} orders/s with all {cores} cores busy "
        f"({best / bare_rate:.0%} of the bare loop); 80% needs at most {need:.1f} CPU ms "
        "per 10 messages"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=3000, help="commands per product")
    defaults = Options()
    ap.add_argument("--receivers", type=int, default=defaults.receivers)
    ap.add_argument("--prefetch", type=int, default=defaults.prefetch)
    ap.add_argument("--merge", type=int, default=defaults.merge)
    ap.add_argument("--no-http", action="store_true", help="skip the HTTP figure")
    ap.add_argument("--repeat", type=int, default=5, help="one-product drains (default 5)")
    ap.add_argument(
        "--steady",
        type=int,
        help="orders/s of the steady-flow run (default: half the one-product drain's rate)",
    )
    ap.add_argument("--steady-seconds", type=int, default=10, help="length of the steady run")
    args = ap.parse_args()
    options = Options(
        wait_s=1,
        poll_s=0.2,
        receivers=args.receivers,
        prefetch=args.prefetch,
        merge=args.merge,
        record_timings=True,
    )
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.machine()}"
    )
    http = (
        None
        if args.no_http
        else subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("api.py")),
                "--only",
                "POST /orders",
                "--seconds",
                "5",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    )
    if http is not None:
        print("HTTP (chalice local):\n  " + "\n  ".join(http.stdout.strip().splitlines()[1:]))
    print(
        f"matcher options: receivers {options.receivers}, prefetch {options.prefetch}, "
        f"merge {options.merge}"
    )
    cfg, url = setup()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            bare(cfg, 500)  # LocalStack's first few hundred messages run slower: warm it up
            alone = bare(cfg, args.orders)
            idle = pipeline(cfg, args.orders, options, 0)
            waiting = pipeline(cfg, args.orders, options, 0, wait_ms=3)
            busy = pipeline(cfg, args.orders, options, 4)
            print(
                f"the matcher's SQS process with no settler: {idle:,.0f} messages/s; with a "
                f"stand-in settler that waits 3 ms per batch using no CPU: {waiting:,.0f} "
                f"({waiting / alone:.0%}); that spins 4 ms of CPU per batch: {busy:,.0f} "
                f"({busy / alone:.0%} of the bare loop's {alone:,.0f} just before)"
            )
            two = bare(cfg, args.orders, loops=2)
            one = bare(cfg, args.orders)
            serial = "serves one call at a time" if two / one < 1.2 else "serves calls in parallel"
            print(
                f"two bare loops at once: {two:,.0f} messages/s, {two / one:.2f}x one loop's "
                f"{one:,.0f} just after: the endpoint {serial}"
            )
            # LocalStack's rate drifts during a run: each drain is compared with a bare drain
            # just before and just after it, and the run with the median ratio is reported.
            runs: list[tuple[float, Drained]] = []
            bare_cpu: dict[str, float] = {}
            bare_machine: dict[str, float] = {}
            boto_cpu: dict[str, float] = {}
            boto = [bare(cfg, args.orders, cpu=boto_cpu, client="boto3")]
            for r in range(args.repeat):
                before = bare(cfg, args.orders, cpu=bare_cpu, machine=bare_machine)
                sent = fill(cfg, conn, "BTC-USD", args.orders, 1 + r)
                one = drain(cfg, ["BTC-USD"], sent, options)
                after = bare(cfg, args.orders, cpu=bare_cpu, machine=bare_machine)
                ratio = one.rate / ((before + after) / 2)
                runs.append((ratio, one))
                print(
                    f"run {r + 1}: bare one loop {before:,.0f} / {after:,.0f} messages/s "
                    f"(before / after), matcher {one.rate:,.0f} orders/s: ratio {ratio:.0%}"
                )
            boto.append(bare(cfg, args.orders, cpu=boto_cpu, client="boto3"))
            print(
                f"bare one loop with boto3 instead of the matcher's client: "
                f"{boto[0]:,.0f} / {boto[1]:,.0f} messages/s (before / after the drains)"
            )
            runs.sort(key=lambda run: run[0])
            ratio, one = runs[len(runs) // 2]
            report("matcher, 1 product (the median run)", one)
            print(
                f"  ratio matcher/bare: {ratio:.0%} median of "
                f"{', '.join(f'{run[0]:.0%}' for run in runs)}"
            )
            ceiling(one, one.rate / ratio)
            print(
                "  the bare loop's CPU ms per 10 messages: "
                + cpu_line(
                    bare_cpu,
                    args.repeat * 2 * args.orders / 10,
                    {"matcher": "the loop (sqs_wire)"},
                )
            )
            print("  the machine during the bare loops: " + machine_line(bare_machine))
            print(
                "  the same with boto3: "
                + cpu_line(boto_cpu, 2 * args.orders / 10, {"matcher": "the loop (boto3)"})
            )

            three = list(catalog.PRODUCTS)
            sent = sum(fill(cfg, conn, p, args.orders, 10 + i) for i, p in enumerate(three))
            report("matcher, 3 products", drain(cfg, three, sent, options))

            rate = args.steady or max(10, round(one.rate / 20) * 10)
            cycles, latency = steady(cfg, conn, "ETH-USD", rate, args.steady_seconds, options)
            settle = [c.settle * 1000 for c in cycles]
            proc = [c.processing * 1000 for c in cycles]
            full = [(c.processing + c.receive + c.delete) * 1000 for c in cycles]
            print(
                f"matcher, 1 product at a steady {rate} orders/s for {args.steady_seconds} s "
                f"({len(cycles)} batches of {statistics.mean(c.messages for c in cycles):.1f}):"
            )
            for name, values in (
                ("settle (load+match+write)", settle),
                ("cycle excl. SQS (all work)", proc),
                ("cycle incl. SQS", full),
                ("order sent -> committed", latency.committed),
                ("order sent -> on the feed", latency.published),
            ):
                print(
                    f"  {name:<27}p50 {pct(values, 0.5):6.2f} ms  p99 {pct(values, 0.99):6.2f} ms"
                )
            print(
                f"  (incl. SQS counts a receive from its call, so at a steady flow it includes the "
                f"long poll's wait for the next message; the last two lines follow each of "
                f"{len(latency.committed):,} orders from the moment its send returned, as the "
                f"API answers)"
            )

            settle_alone(conn, "BTC-USD", args.orders, 99)

        from matcher.check import run_check

        result = run_check(url)
        print("exchange check:", "OK" if result.ok else result.text())
        return 0 if result.ok else 1
    finally:
        drop(cfg, url)


if __name__ == "__main__":
    sys.exit(main())
