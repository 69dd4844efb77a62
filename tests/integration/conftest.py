"""Fixtures for the matcher's tests: its settings, environment and order flow on a database of
each test's own (`fresh_db`, in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from chalicelib.core import catalog
from chalicelib.messaging import queues
from chalicelib.messaging.sqs import sqs_client
from chalicelib.platform.cache import redis_client
from chalicelib.platform.config import Settings
from tests.conftest import service_env
from tests.integration.orderflow import Flow


@pytest.fixture
def matcher_settings(fresh_db: str, redis_url: str, sqs_endpoint: str) -> Iterator[Settings]:
    prefix = f"m{uuid.uuid4().hex[:10]}"
    cfg = Settings("test", fresh_db, redis_url, sqs_endpoint, "us-east-1", prefix)
    specs = queues.queue_specs(prefix, list(catalog.PRODUCTS))
    queues.ensure_queues(sqs_client(cfg), specs)
    yield cfg
    queues.delete_queues(sqs_client(cfg), specs)
    r = redis_client(redis_url)  # and the market data its matchers published
    keys = list(r.scan_iter(match=f"md:{prefix}:*", count=1000))
    if keys:
        r.delete(*keys)


@pytest.fixture
def matcher_env(matcher_settings: Settings) -> dict[str, str]:
    """The environment of an `exchange matcher` subprocess pointed at this test's services."""
    c = matcher_settings
    return {
        "STAGE": "test",
        **service_env(c.database_url, c.redis_url, c.aws_endpoint_url or "", c.queue_prefix),
    }


@pytest.fixture
def flow(matcher_settings: Settings) -> Iterator[Flow]:
    f = Flow(matcher_settings)
    yield f
    f.close()
