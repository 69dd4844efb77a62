"""API throughput and latency over real HTTP against `chalice local` (the Lambda stand-in).

Prints requests/s and latency percentiles for: GET /time (baseline: no I/O), GET /products
(Postgres), signed GET /accounts (API key lookup, AES-GCM, HMAC, Redis rate limit, Postgres),
POST /orders accepted on one product (hold + insert + SQS send), and login (argon2id). Ratios are
against the baseline measured in the same run. Needs Postgres, Redis and an SQS endpoint (found
or started as `exchange dev` does).

    .venv/bin/python benchmarks/api.py [--seconds 5] [--threads 4]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.core import catalog  # noqa: E402
from chalicelib.identity.signing import sign  # noqa: E402
from chalicelib.messaging import queues  # noqa: E402
from chalicelib.messaging.sqs import sqs_client  # noqa: E402
from chalicelib.platform.config import Settings  # noqa: E402
from ops import migrations, services  # noqa: E402

Request = Callable[[], tuple[str, str, bytes | None, dict[str, str]]]


def call(base: str, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
    req = urllib.request.Request(
        base + path,
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def load(base: str, make: Request, seconds: float, threads: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        nonlocal errors
        mine: list[float] = []
        bad = 0
        while time.perf_counter() < deadline:
            method, path, body, headers = make()
            started = time.perf_counter()
            status = call(base, method, path, body, headers)
            mine.append(time.perf_counter() - started)
            bad += status >= 400
        with lock:
            latencies.extend(mine)
            errors += bad

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "rps": len(latencies) / elapsed,
        "p50": pct(0.5),
        "p99": pct(0.99),
        "n": len(latencies),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--only",
        default="",
        help="run only cases whose name contains this (the baseline always runs)",
    )
    args = parser.parse_args()

    state = ROOT / ".dev"
    pg, rd, sq = services.postgres(state), services.redis(state), services.sqs(state)
    db_url = pg.url.rsplit("/", 1)[0] + "/exchange_bench"
    migrations.ensure_database(db_url)
    migrations.migrate_up(db_url)
    migrations.seed(db_url)
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    cfg = Settings("test", db_url, rd.url, sq.url, "us-east-1", prefix)
    queues.ensure_queues(sqs_client(cfg), queues.queue_specs(prefix, list(catalog.PRODUCTS)))
    port = services.free_port()
    env = os.environ | {
        "DATABASE_URL": db_url,
        "REDIS_URL": rd.url,
        "AWS_ENDPOINT_URL": sq.url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "QUEUE_PREFIX": prefix,
        "API_KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "RATE_LIMIT_PUBLIC": "1000000/1000000",
        "RATE_LIMIT_PRIVATE": "1000000/1000000",
        "LOGIN_ATTEMPTS": "1000000/1",
    }
    chalice = str(Path(sys.executable).with_name("chalice"))
    proc = subprocess.Popen(
        [chalice, "local", "--stage", "test", "--port", str(port), "--no-autoreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        services.wait_for_port("127.0.0.1", port, 60, "chalice local", proc)
        creds = json.dumps(
            {"email": f"b{uuid.uuid4().hex[:8]}@example.com", "password": "a long password"}
        ).encode()
        call(base, "POST", "/auth/signup", creds, {})
        req = urllib.request.Request(base + "/auth/login", data=creds, method="POST")
        token = json.load(urllib.request.urlopen(req))["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        call(base, "POST", "/dev/faucet", b'{"currency":"USD","amount":"10000000"}', bearer)
        req = urllib.request.Request(
            base + "/api-keys",
            method="POST",
            headers=bearer,
            data=b'{"permissions":["view","trade"]}',
        )
        key = json.load(urllib.request.urlopen(req))

        def signed(method: str, path: str, body: bytes | None) -> dict[str, str]:
            ts = f"{time.time():.6f}"  # unique per request: POSTs are refused as replays
            text = (body or b"").decode()
            return {
                "CB-ACCESS-KEY": key["key"],
                "CB-ACCESS-PASSPHRASE": key["passphrase"],
                "CB-ACCESS-TIMESTAMP": ts,
                "CB-ACCESS-SIGN": sign(key["secret"], ts, method, path, text),
            }

        def order() -> tuple[str, str, bytes | None, dict[str, str]]:
            body = json.dumps(
                {
                    "product_id": "BTC-USD",
                    "side": "buy",
                    "price": "100.00",
                    "size": "0.0001",
                    "client_oid": str(uuid.uuid4()),
                }
            ).encode()
            return "POST", "/orders", body, signed("POST", "/orders", body)

        cases: list[tuple[str, Request, int]] = [
            ("GET /time (baseline)", lambda: ("GET", "/time", None, {}), args.threads),
            ("GET /products", lambda: ("GET", "/products", None, {}), args.threads),
            (
                "GET /accounts signed",
                lambda: ("GET", "/accounts", None, signed("GET", "/accounts", None)),
                args.threads,
            ),
            ("POST /orders signed, BTC-USD", order, args.threads),
            ("POST /auth/login (argon2id)", lambda: ("POST", "/auth/login", creds, {}), 1),
        ]
        print(
            f"chalice local on 127.0.0.1, {args.threads} client threads, {args.seconds:.0f} s "
            f"each; {os.cpu_count()} cores, Python {sys.version.split()[0]}"
        )
        baseline = None
        for name, make, threads in cases:
            if baseline is not None and args.only not in name:
                continue
            r = load(base, make, args.seconds, threads)
            baseline = baseline or r["rps"]
            print(
                f"{name:<32} {r['rps']:8.1f} req/s  p50 {r['p50']:7.2f} ms  "
                f"p99 {r['p99']:7.2f} ms  ({r['rps'] / baseline:5.2f}x baseline, "
                f"{int(r['n'])} requests, {int(r['errors'])} errors)"
            )
        rss = int(
            subprocess.run(
                ["ps", "-o", "rss=", "-p", str(proc.pid)], capture_output=True, text=True
            ).stdout.strip()
            or 0
        )
        print(f"API process RSS after the run: {rss / 1024:.1f} MiB")
    finally:
        services.terminate(proc)
        queues.delete_queues(sqs_client(cfg), queues.queue_specs(prefix, list(catalog.PRODUCTS)))
        for svc in (sq, rd, pg):
            if svc.stop:
                svc.stop()


if __name__ == "__main__":
    main()
