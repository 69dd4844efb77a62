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


def _logged_health(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The checks that GET /health logs from now on."""
    from chalicelib.api import health

    logged: list[dict[str, Any]] = []

    def warning(message: str, *args: Any, extra: dict[str, Any] | None = None) -> None:
        if message == "health degraded":
            assert extra is not None
            logged.append(extra["checks"])

    monkeypatch.setattr(health.logger, "warning", warning)
    return logged


def test_health_is_green_with_every_dependency_up(api: Any) -> None:
    from chalicelib.api import health

    assert _get(api, "/health") == (200, {"status": "ok"})
    healthy, checks = health.check_all()
    assert healthy and {k: v["status"] for k, v in checks.items()} == {
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
    logged = _logged_health(monkeypatch)
    # The public learns only that something is wrong, not what.
    assert _get(api, "/health") == (503, {"status": "degraded"})
    [checks] = logged
    assert checks["redis"]["status"] == "down" and checks["redis"]["error"]
    assert checks["postgres"]["status"] == "ok"


def test_health_is_503_when_postgres_is_unreachable(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{services.free_port()}/x")
    logged = _logged_health(monkeypatch)
    assert _get(api, "/health") == (503, {"status": "degraded"})
    assert logged[0]["postgres"]["status"] == "down"


def test_health_is_503_when_the_queues_are_missing(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_PREFIX", "never-created")
    logged = _logged_health(monkeypatch)
    assert _get(api, "/health") == (503, {"status": "degraded"})
    assert logged[0]["sqs"]["status"] == "down"


def test_exchange_health_shows_operators_each_check(
    settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ops import cli

    assert cli.main(["health"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["postgres", "ok"],
        ["redis", "ok"],
        ["sqs", "ok"],
    ]
    monkeypatch.setenv("QUEUE_PREFIX", "never-created")
    assert cli.main(["health"]) == 1
    out = capsys.readouterr().out
    assert "postgres  ok" in out and "redis     ok" in out
    assert "sqs       down  SqsError: QueueDoesNotExist" in out


def test_unknown_errors_are_json_500_without_internals(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.marketdata import products

    def boom() -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(products, "list_products", boom)
    status, body = _get(api, "/products")
    assert (status, body) == (500, {"message": "Internal server error"})
