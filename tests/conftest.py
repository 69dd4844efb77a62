"""Fixtures for the real services the tests talk to.

Postgres, Redis and the SQS endpoint are found or started exactly as `exchange dev` does it
(ops.services): an environment URL, else the local default port, else an embedded server, which
this session then stops at the end. Tests isolate themselves with random names (a database per
session, a queue prefix per test) instead of truncating anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib import catalog, queues
from chalicelib.config import Settings
from chalicelib.sqs import sqs_client
from ops import migrations, services

STATE_DIR = Path(os.environ.get("EXCHANGE_STATE_DIR", Path(__file__).parent.parent / ".dev"))


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


@pytest.fixture(scope="session")
def redis_url(started_services: dict[str, services.Service]) -> str:
    return started_services["redis"].url


@pytest.fixture(scope="session")
def sqs_endpoint(started_services: dict[str, services.Service]) -> str:
    return started_services["sqs"].url


@pytest.fixture
def queue_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    redis_url: str,
    sqs_endpoint: str,
    queue_prefix: str,
) -> Settings:
    """The environment of a test stage pointed at the real services, with this test's queues."""
    env = {
        "STAGE": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AWS_ENDPOINT_URL": sqs_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "QUEUE_PREFIX": queue_prefix,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = Settings("test", database_url, redis_url, sqs_endpoint, "us-east-1", queue_prefix)
    queues.ensure_queues(sqs_client(cfg), queues.queue_specs(queue_prefix, list(catalog.PRODUCTS)))
    return cfg


@pytest.fixture
def api(settings: Settings) -> Iterator[object]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="test") as client:
        yield client
