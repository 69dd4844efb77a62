"""Fixtures for the real services the tests talk to.

Postgres, Redis and the SQS endpoint are found or started exactly as `exchange dev` does it
(ops.services): an environment URL, else the local default port, else an embedded server, which
this session then stops at the end. Tests isolate themselves with random names (a database per
session, a queue prefix per test) instead of truncating anything.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chalicelib.core import catalog
from chalicelib.messaging import queues
from chalicelib.messaging.sqs import sqs_client
from chalicelib.platform.config import Settings
from ops import migrations, services

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("EXCHANGE_STATE_DIR", ROOT / ".dev"))

# The tests fund their users from the faucet, which exists only when switched on. app.py registers
# its route when first imported, so the switch is on for the whole test process (the tests that
# see it off or in `prod` import the app in a subprocess: tests/unit/test_faucet_switch.py).
os.environ["EXCHANGE_FAUCET"] = "1"


@pytest.fixture(scope="session")
def started_services() -> Iterator[dict[str, services.Service]]:
    found = {}
    try:
        for resolve in (services.postgres, services.redis, services.sqs):
            svc = resolve(STATE_DIR)
            found[svc.name] = svc
        yield found
    finally:
        for svc in reversed(found.values()):
            if svc.stop is not None:
                svc.stop()


@pytest.fixture(scope="session")
def database_url(started_services: dict[str, services.Service]) -> str:
    """A database of this test session's own, migrated and seeded."""
    base = started_services["postgres"].url.rsplit("/", 1)[0]
    url = f"{base}/exchange_test_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(url)
    migrations.migrate_up(url)
    migrations.seed(url)
    return url


# The matcher rebuilds a product's book from every open order of the product in its database, so
# tests that match cannot share one (another test's resting orders would trade with theirs).
# Each gets a fresh copy of a migrated, seeded template database (a file copy, far cheaper than
# migrating anew).
def _admin(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


@pytest.fixture(scope="session")
def template_db(started_services: dict[str, services.Service]) -> Iterator[str]:
    base = started_services["postgres"].url.rsplit("/", 1)[0]
    name = f"exchange_tpl_{uuid.uuid4().hex[:8]}"
    url = f"{base}/{name}"
    migrations.ensure_database(url)
    migrations.migrate_up(url)
    migrations.seed(url)
    with psycopg.connect(_admin(url), autocommit=True) as conn:
        # A template cannot be copied while anything (yoyo's backend) is connected to it.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
    yield url
    with psycopg.connect(_admin(url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def fresh_db(template_db: str) -> Iterator[str]:
    tpl = template_db.rsplit("/", 1)[1]
    name = f"exchange_m_{uuid.uuid4().hex[:8]}"
    url = template_db.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(_admin(url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {tpl}")
    yield url
    with psycopg.connect(_admin(url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def redis_url(started_services: dict[str, services.Service]) -> str:
    return started_services["redis"].url


@pytest.fixture(scope="session")
def sqs_endpoint(started_services: dict[str, services.Service]) -> str:
    return started_services["sqs"].url


@pytest.fixture
def queue_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def service_env(
    database_url: str, redis_url: str, sqs_endpoint: str, prefix: str
) -> dict[str, str]:
    """Environment for the API (or any process of ours) pointed at the test services."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AWS_ENDPOINT_URL": sqs_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "QUEUE_PREFIX": prefix,
        "EXCHANGE_FAUCET": "1",
        "API_KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        # Generous limits by default; the rate-limit tests set Coinbase's own.
        "RATE_LIMIT_PUBLIC": "10000/10000",
        "RATE_LIMIT_PRIVATE": "10000/10000",
        "AUTH_FAILURES_PER_IP": "10000/1",
        "AUTH_FAILURES_PER_KEY": "10000/1",
        "LOGIN_ATTEMPTS": "10000/1",
    }


@pytest.fixture
def settings(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    redis_url: str,
    sqs_endpoint: str,
    queue_prefix: str,
) -> Iterator[Settings]:
    """The environment of a test stage pointed at the real services, with this test's queues."""
    env = {"STAGE": "test", **service_env(database_url, redis_url, sqs_endpoint, queue_prefix)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = Settings("test", database_url, redis_url, sqs_endpoint, "us-east-1", queue_prefix)
    specs = queues.queue_specs(queue_prefix, list(catalog.PRODUCTS))
    queues.ensure_queues(sqs_client(cfg), specs)
    yield cfg
    queues.delete_queues(sqs_client(cfg), specs)


@pytest.fixture
def api(settings: Settings) -> Iterator[object]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="test") as client:
        yield client


class Caller:
    """A signed-up, logged-in user of the API, with helpers that speak to it over the test client.

    `headers()` are the session's; `signed()` builds Coinbase CB-ACCESS-* headers for an API key.
    """

    def __init__(self, api: Any, email: str, password: str) -> None:
        self.api = api
        self.email = email
        self.password = password
        reply = api.http.post(
            "/auth/signup", headers=JSON, body=json.dumps({"email": email, "password": password})
        )
        assert reply.status_code == 201, reply.body
        self.user_id = json.loads(reply.body)["user_id"]
        reply = api.http.post(
            "/auth/login", headers=JSON, body=json.dumps({"email": email, "password": password})
        )
        assert reply.status_code == 200, reply.body
        self.token = json.loads(reply.body)["token"]

    def headers(self) -> dict[str, str]:
        return JSON | {"Authorization": f"Bearer {self.token}"}

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        raw = "" if body is None else json.dumps(body)
        reply = getattr(self.api.http, method.lower())(
            path, headers=headers if headers is not None else self.headers(), body=raw
        )
        return reply.status_code, json.loads(reply.body) if reply.body else None

    def new_key(self, *permissions: str) -> dict[str, str]:
        status, key = self.call(
            "POST", "/api-keys", {"permissions": list(permissions), "passphrase": "correct horse"}
        )
        assert status == 201, key
        return key

    def fund(self, currency: str, amount: str) -> None:
        status, body = self.call("POST", "/dev/faucet", {"currency": currency, "amount": amount})
        assert status == 200, body


def signed(
    key: dict[str, str], method: str, path: str, body: str = "", timestamp: str | None = None
) -> dict[str, str]:
    from chalicelib.identity.signing import sign

    ts = timestamp or str(int(time.time()))
    return JSON | {
        "CB-ACCESS-KEY": key["key"],
        "CB-ACCESS-PASSPHRASE": key["passphrase"],
        "CB-ACCESS-TIMESTAMP": ts,
        "CB-ACCESS-SIGN": sign(key["secret"], ts, method, path, body),
    }


JSON = {"Content-Type": "application/json"}


@pytest.fixture
def make_user(api: Any) -> Any:
    def make() -> Caller:
        return Caller(api, f"u{uuid.uuid4().hex[:12]}@example.com", "a long enough password")

    return make


@dataclass(frozen=True)
class LiveApi:
    url: str
    env: dict[str, str]


@contextmanager
def serve_api(env: dict[str, str]) -> Iterator[LiveApi]:
    """The API served over real HTTP by `chalice local` (stage test) with this environment,
    queues created; as clients see it."""
    prefix = env["QUEUE_PREFIX"]
    cfg = Settings(
        "test", env["DATABASE_URL"], env["REDIS_URL"], env["AWS_ENDPOINT_URL"], "us-east-1", prefix
    )
    specs = queues.queue_specs(prefix, list(catalog.PRODUCTS))
    queues.ensure_queues(sqs_client(cfg), specs)
    port = services.free_port()
    chalice = str(Path(sys.executable).with_name("chalice"))
    proc = subprocess.Popen(
        [
            chalice,
            "local",
            "--stage",
            "test",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-autoreload",
        ],
        cwd=ROOT,
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        services.wait_for_port("127.0.0.1", port, 60, "chalice local", proc)
        yield LiveApi(f"http://127.0.0.1:{port}", env)
    finally:
        services.terminate(proc)
        queues.delete_queues(sqs_client(cfg), specs)


@pytest.fixture(scope="session")
def live_api(database_url: str, redis_url: str, sqs_endpoint: str) -> Iterator[LiveApi]:
    """The API over HTTP on the session database (no matcher: orders stay pending)."""
    env = service_env(database_url, redis_url, sqs_endpoint, f"live{uuid.uuid4().hex[:8]}")
    with serve_api(env) as api:
        yield api


def http_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One request over real HTTP; returns (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=JSON | (headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
