"""`exchange dev` end to end: brings the stack up, serves the API over HTTP, stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from ops import services

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_exchange_dev_serves_products_and_stops_cleanly(
    database_url: str, redis_url: str, sqs_endpoint: str
) -> None:
    port = services.free_port()
    fresh_db = database_url.rsplit("/", 1)[0] + f"/exchange_dev_{uuid.uuid4().hex[:8]}"
    env = (
        os.environ
        | {
            "DATABASE_URL": fresh_db,  # not created yet: `exchange dev` must create and migrate it
            "REDIS_URL": redis_url,
            "AWS_ENDPOINT_URL": sqs_endpoint,
            "QUEUE_PREFIX": f"dev{uuid.uuid4().hex[:8]}",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "dev", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        output = "".join(lines)
        assert "ready in" in output, output
        assert f"http://127.0.0.1:{port}" in output

        status, products = _get(f"http://127.0.0.1:{port}/products")
        assert status == 200
        assert sorted(p["id"] for p in products) == ["BTC-USD", "ETH-BTC", "ETH-USD"]
        status, health = _get(f"http://127.0.0.1:{port}/health")
        assert status == 200, health
        assert _get(f"http://127.0.0.1:{port}/products/NOPE") == (
            404,
            {"message": "Product not found"},
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, rest
    assert "stopped api" in rest
    assert not services.port_open("127.0.0.1", port)
