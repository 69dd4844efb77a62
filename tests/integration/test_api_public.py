"""The public routes through Chalice's test client, against real Postgres, Redis and SQS."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ops import services


def _get(api: Any, path: str) -> tuple[int, Any]:
    response = api.http.get(path)
    return response.status_code, json.loads(response.body)


def test_products_lists_the_three_pairs_with_their_grids(api: Any) -> None:
    status, body = _get(api, "/products")
    assert status == 200
    grid = {p["id"]: (p["quote_increment"], p["base_increment"], p["base_min_size"]) for p in body}
    assert grid == {
        "BTC-USD": ("0.01", "0.000001", "0.0001"),
        "ETH-USD": ("0.01", "0.0001", "0.001"),
        "ETH-BTC": ("0.00001", "0.001", "0.01"),
    }
    assert all(p["status"] == "online" and p["trading_disabled"] is False for p in body)


def test_one_product_and_a_missing_one(api: Any) -> None:
    assert _get(api, "/products/ETH-BTC")[1]["base_currency"] == "ETH"
    assert _get(api, "/products/DOGE-USD") == (404, {"message": "Product not found"})


def test_time_is_now(api: Any) -> None:
    status, body = _get(api, "/time")
    assert status == 200 and abs(body["epoch"] - time.time()) < 5
    assert body["iso"].endswith("Z")


def test_openapi_document_lists_every_route(api: Any) -> None:
    status, doc = _get(api, "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/health", "/time", "/products", "/products/{product_id}", "/openapi.json"} <= set(
        doc["paths"]
    )
    assert doc["paths"]["/products/{product_id}"]["get"]["responses"]["404"]


def test_health_is_green_with_every_dependency_up(api: Any) -> None:
    status, body = _get(api, "/health")
    assert status == 200, body
    assert {k: v["status"] for k, v in body["checks"].items()} == {
        "postgres": "ok",
        "redis": "ok",
        "sqs": "ok",
    }


def test_health_is_503_when_redis_stops(
    api: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = services.free_port()
    stop = services.start_embedded_redis(port, tmp_path)
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    try:
        assert _get(api, "/health")[0] == 200
    finally:
        stop()
    status, body = _get(api, "/health")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["status"] == "down"
    assert body["checks"]["postgres"]["status"] == "ok"


def test_health_is_503_when_postgres_is_unreachable(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{services.free_port()}/x")
    status, body = _get(api, "/health")
    assert status == 503 and body["checks"]["postgres"]["status"] == "down"


def test_health_is_503_when_the_queues_are_missing(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_PREFIX", "never-created")
    status, body = _get(api, "/health")
    assert status == 503 and body["checks"]["sqs"]["status"] == "down"


def test_unknown_errors_are_json_500_without_internals(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.marketdata import products

    def boom() -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(products, "list_products", boom)
    status, body = _get(api, "/products")
    assert (status, body) == (500, {"message": "Internal server error"})
