"""Fixtures for the matcher's tests: a database of each test's own and its queues.

The matcher rebuilds a product's book from every open order of the product in its database, so
tests that match cannot share one (another test's resting orders would trade with theirs).
Each gets a fresh copy of a migrated, seeded template database (a file copy: ~0.1 s).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from chalicelib import catalog, queues
from chalicelib.config import Settings
from chalicelib.sqs import sqs_client
from ops import migrations
from tests.conftest import service_env
from tests.integration.orderflow import Flow


def _admin(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


@pytest.fixture(scope="session")
def template_db(started_services: dict) -> Iterator[str]:
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


@pytest.fixture
def matcher_settings(fresh_db: str, redis_url: str, sqs_endpoint: str) -> Settings:
    prefix = f"m{uuid.uuid4().hex[:10]}"
    cfg = Settings("test", fresh_db, redis_url, sqs_endpoint, "us-east-1", prefix)
    queues.ensure_queues(sqs_client(cfg), queues.queue_specs(prefix, list(catalog.PRODUCTS)))
    return cfg


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
