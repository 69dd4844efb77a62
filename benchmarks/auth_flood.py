"""Authentication under a flood: how fast refused requests are answered, and what a flood costs
Postgres.

Through `chalice.test.Client` (the app in this process, one request at a time, no HTTP), with
the failure budgets at their defaults and the request limits out of the way. Prints requests/s
and Postgres work (API key lookups, and connections taken from the pool, which every query of
the API needs) for:

1. `GET /time` (the baseline: no I/O), bad signatures with the budgets out of the way (what
   every bad signature costs without them), and a good signed `GET /accounts`;
2. bad signatures for one API key from one address: the first failures are looked up, then the
   budgets refuse with 429 before any lookup;
3. the same from a new address each request (the key's own budget refuses);
4. made-up API keys, a new key and a new address each request (every budget is fresh: each key
   costs one lookup), then the same keys again (remembered as unknown: no lookup).

Needs Postgres and Redis (found or started as `exchange dev` does); works in a database of its
own and drops it afterwards.

    .venv/bin/python benchmarks/auth_flood.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # before the logger is created

import psycopg  # noqa: E402
from chalice.local import LambdaEventConverter  # noqa: E402
from chalice.test import Client  # noqa: E402

from chalicelib.identity import apikeys  # noqa: E402
from chalicelib.identity.signing import sign  # noqa: E402
from chalicelib.platform import db  # noqa: E402
from ops import migrations, services  # noqa: E402

JSON = {"Content-Type": "application/json"}


@dataclass
class Counts:
    lookups: int = 0
    connections: int = 0


COUNTS = Counts()


def _count_postgres() -> None:
    """Count API key lookups and pool connections (every query of the API takes one)."""
    load, connection = apikeys.load, db.connection

    def counted_load(*args: Any, **kwargs: Any) -> Any:
        COUNTS.lookups += 1
        return load(*args, **kwargs)

    @contextmanager
    def counted_connection(*args: Any, **kwargs: Any) -> Iterator[psycopg.Connection]:
        COUNTS.connections += 1
        with connection(*args, **kwargs) as conn:
            yield conn

    apikeys.load = counted_load  # type: ignore[assignment]
    db.connection = counted_connection  # type: ignore[assignment]


def _from(ip: str) -> None:
    LambdaEventConverter.LOCAL_SOURCE_IP = ip  # type: ignore[misc]


def _signed(key: dict[str, str], path: str, signature: str | None = None) -> dict[str, str]:
    ts = str(int(time.time()))
    return JSON | {
        "CB-ACCESS-KEY": key["key"],
        "CB-ACCESS-PASSPHRASE": key["passphrase"],
        "CB-ACCESS-TIMESTAMP": ts,
        "CB-ACCESS-SIGN": signature or sign(key["secret"], ts, "GET", path, ""),
    }


@dataclass
class Run:
    name: str
    n: int
    seconds: float
    statuses: dict[int, int]
    lookups: int
    connections: int

    def line(self) -> str:
        shown = ", ".join(f"{s}: {c}" for s, c in sorted(self.statuses.items()))
        rate, ms = self.n / self.seconds, self.seconds / self.n * 1e3
        return (
            f"{self.name:<46} {rate:7,.0f}/s {ms:6.3f} ms  [{shown}]"
            f"  key lookups {self.lookups}, Postgres connections {self.connections}"
        )


def run(name: str, client: Any, requests: list[tuple[str, dict[str, str], str]]) -> Run:
    """Send (path, headers, source address) one after another; time them and count."""
    statuses: dict[int, int] = {}
    before = Counts(COUNTS.lookups, COUNTS.connections)
    started = time.perf_counter()
    for path, headers, ip in requests:
        _from(ip)
        status = client.http.get(path, headers=headers).status_code
        statuses[status] = statuses.get(status, 0) + 1
    seconds = time.perf_counter() - started
    return Run(
        name,
        len(requests),
        seconds,
        statuses,
        COUNTS.lookups - before.lookups,
        COUNTS.connections - before.connections,
    )


def _address(tag: str) -> Callable[[int], str]:
    """Addresses of this run only (bucket names, so any text works; IPv6 documentation range)."""
    return lambda i: f"2001:db8:{tag}::{i:x}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000, help="requests per case")
    args = parser.parse_args()
    n = args.requests

    state = services.STATE_DIR
    pg, rd = services.postgres(state), services.redis(state)
    url = pg.url.rsplit("/", 1)[0] + f"/exchange_bench_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(url)
    migrations.migrate_up(url)
    migrations.seed(url)
    os.environ.update(
        {
            "STAGE": "test",
            "DATABASE_URL": url,
            "REDIS_URL": rd.url,
            "QUEUE_PREFIX": f"bench{uuid.uuid4().hex[:8]}",
            "API_KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            "RATE_LIMIT_PUBLIC": "1000000/1000000",
            "RATE_LIMIT_PRIVATE": "1000000/1000000",
            "RATE_LIMIT_AUTH_IP": "1000000/1000000",
        }
    )
    for name in ("AUTH_FAILURES_PER_IP", "AUTH_FAILURES_PER_KEY", "LOGIN_ATTEMPTS"):
        os.environ.pop(name, None)  # the defaults
    from app import app

    tag = uuid.uuid4().hex[:4]
    try:
        with Client(app, stage_name="test") as client:
            _from(_address(tag)(0))
            creds = json.dumps({"email": f"f{tag}@example.com", "password": "a long password"})
            client.http.post("/auth/signup", headers=JSON, body=creds)
            token = json.loads(client.http.post("/auth/login", headers=JSON, body=creds).body)
            bearer = JSON | {"Authorization": f"Bearer {token['token']}"}
            body = json.dumps({"permissions": ["view"]})
            key = json.loads(client.http.post("/api-keys", headers=bearer, body=body).body)
            _count_postgres()
            bad = "bm90IHRoZSBzaWduYXR1cmU="

            one, each, again, base = (_address(f"{tag}:{i}") for i in range(1, 5))
            made_up = [{**key, "key": uuid.uuid4().hex} for _ in range(n)]
            warm = [("/time", JSON, base(0)), ("/accounts", _signed(key, "/accounts"), base(0))]
            run("warm-up", client, warm * 200)
            os.environ["AUTH_FAILURES_PER_IP"] = os.environ["AUTH_FAILURES_PER_KEY"] = "1000000/1"
            unguarded = run(
                "bad signatures, budgets out of the way",
                client,
                [("/accounts", _signed(key, "/accounts", bad), base(1)) for _ in range(n)],
            )
            del os.environ["AUTH_FAILURES_PER_IP"], os.environ["AUTH_FAILURES_PER_KEY"]
            runs = [
                run("GET /time (baseline)", client, [("/time", JSON, base(0))] * n),
                unguarded,
                run(
                    "signed GET /accounts, good",
                    client,
                    [("/accounts", _signed(key, "/accounts"), base(0)) for _ in range(n)],
                ),
                run(
                    "bad signatures, one key, one address",
                    client,
                    [("/accounts", _signed(key, "/accounts", bad), one(0)) for _ in range(n)],
                ),
                run(
                    "bad signatures, one key, a new address each",
                    client,
                    [("/accounts", _signed(key, "/accounts", bad), each(i)) for i in range(n)],
                ),
                run(
                    "made-up keys, a new key and address each",
                    client,
                    [
                        ("/accounts", _signed(k, "/accounts"), again(i))
                        for i, k in enumerate(made_up)
                    ],
                ),
                run(
                    "the same made-up keys again (new addresses)",
                    client,
                    [
                        ("/accounts", _signed(k, "/accounts"), again(n + i))
                        for i, k in enumerate(made_up)
                    ],
                ),
            ]
    finally:
        admin = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    print(
        f"chalice.test.Client, one request at a time, {n} requests per case; "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; failure budgets at defaults"
    )
    for r in runs:
        print(r.line())
    baseline, refused = runs[0], runs[3]
    ratio = (refused.n / refused.seconds) / (baseline.n / baseline.seconds)
    print(
        f"bad signatures, one key, one address: {refused.statuses.get(429, 0)} of {refused.n} "
        f"answered 429 with {refused.lookups} key lookups, at {ratio:.2f}x the baseline's rate"
    )


if __name__ == "__main__":
    main()
