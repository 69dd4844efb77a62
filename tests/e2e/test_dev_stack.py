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
    # Without EXCHANGE_FAUCET of its own: `exchange dev` switches the faucet on by itself.
    env = (
        {k: v for k, v in os.environ.items() if k != "EXCHANGE_FAUCET"}
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
        assert (status, health) == (200, {"status": "ok"})
        assert "/dev/faucet" in _get(f"http://127.0.0.1:{port}/openapi.json")[1]["paths"]
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


def _can_unshare_network() -> bool:
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


def test_exchange_dev_on_a_machine_where_nothing_runs(tmp_path: Path) -> None:
    """In a network namespace of its own, nothing answers on any port: `exchange dev` must start
    embedded Postgres and Redis and LocalStack itself, serve the API, and stop them all."""
    import pytest

    if not _can_unshare_network():
        pytest.skip("needs root to make a network namespace (CI runs as root)")
    script = tmp_path / "fresh.sh"
    script.write_text(f"""
set -e
ip link set lo up
export EXCHANGE_STATE_DIR={tmp_path}/state
unset DATABASE_URL REDIS_URL AWS_ENDPOINT_URL QUEUE_PREFIX
{sys.executable} -m ops.cli dev > {tmp_path}/dev.log 2>&1 &
pid=$!
for i in $(seq 1 480); do grep -q "Ctrl-C stops" {tmp_path}/dev.log && break; sleep 0.25; done
{sys.executable} - <<'PY'
import json, urllib.request
products = json.load(urllib.request.urlopen("http://127.0.0.1:8000/products", timeout=10))
health = json.load(urllib.request.urlopen("http://127.0.0.1:8000/health", timeout=10))
print("PRODUCTS", sorted(p["id"] for p in products))
print("HEALTH", health["status"])
PY
kill -INT $pid
wait $pid
echo "EXIT $?"
""")
    result = subprocess.run(
        ["unshare", "-n", "bash", str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = (tmp_path / "dev.log").read_text()
    out = result.stdout + result.stderr + log
    assert "PRODUCTS ['BTC-USD', 'ETH-BTC', 'ETH-USD']" in result.stdout, out
    assert "HEALTH ok" in result.stdout, out
    assert "EXIT 0" in result.stdout, out
    for line in (
        "postgres  postgresql://postgres@127.0.0.1:5432/exchange  (embedded)",
        "redis     redis://127.0.0.1:6379/0  (embedded)",
    ):
        assert line in log, log
    assert "(localstack)" in log or "(moto)" in log
    for name in ("api", "sqs", "redis", "postgres"):
        assert f"stopped {name}" in log, log
