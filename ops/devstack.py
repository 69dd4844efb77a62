"""`exchange dev`: the whole exchange on this machine, on embedded defaults, in one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from chalicelib.core import catalog
from chalicelib.messaging import queues
from chalicelib.messaging.sqs import sqs_client
from chalicelib.platform.config import Settings
from ops import migrations, services

PROJECT_DIR = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


class Stack:
    """The services and processes `exchange dev` runs; stops what it started, newest first."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.env: dict[str, str] = {}

    def up_services(self) -> list[services.Service]:
        found = []
        for resolve in (services.postgres, services.redis, services.sqs):
            svc = resolve(self.state_dir)
            if svc.stop is not None:
                self._stops.append((svc.name, svc.stop))
            found.append(svc)
        pg, rd, sq = found
        self.env = {
            "STAGE": "local",
            # Test funds for the local stack (chalicelib/trading/faucet.py), unless switched off.
            "EXCHANGE_FAUCET": os.environ.get("EXCHANGE_FAUCET", "1"),
            "DATABASE_URL": pg.url,
            "REDIS_URL": rd.url,
            "AWS_ENDPOINT_URL": sq.url,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            "QUEUE_PREFIX": os.environ.get("QUEUE_PREFIX", "exchange-local"),
        }
        return found

    def prepare(self) -> dict[str, str]:
        """Database, schema, catalog seed and queues; returns product id -> queue URL."""
        migrations.ensure_database(self.env["DATABASE_URL"])
        applied = migrations.migrate_up(self.env["DATABASE_URL"])
        say(f"migrations applied: {', '.join(applied) or 'none pending'}")
        migrations.seed(self.env["DATABASE_URL"])
        cfg = Settings(
            "local",
            self.env["DATABASE_URL"],
            self.env["REDIS_URL"],
            self.env["AWS_ENDPOINT_URL"],
            self.env["AWS_DEFAULT_REGION"],
            self.env["QUEUE_PREFIX"],
        )
        specs = queues.queue_specs(cfg.queue_prefix, list(catalog.PRODUCTS))
        return queues.ensure_queues(sqs_client(cfg), specs)

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, cwd=PROJECT_DIR, env=os.environ | self.env, start_new_session=True
        )
        self._stops.append((name, lambda: services.terminate(proc)))
        return proc

    def down(self) -> None:
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
                say(f"stopped {name}")
            except Exception as exc:  # keep stopping the rest
                say(f"could not stop {name}: {exc}")


def run(host: str = "127.0.0.1", port: int = 8000) -> int:
    started = time.monotonic()
    stack = Stack(services.STATE_DIR)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        found = stack.up_services()
        queue_urls = stack.prepare()
        chalice = str(Path(sys.executable).with_name("chalice"))
        argv = [chalice, "local", "--stage", "local", "--host", host, "--port", str(port)]
        api = stack.spawn("api", [*argv, "--no-autoreload"])
        services.wait_for_port(host, port, 60, "the API (chalice local)", api)
        exchange = str(Path(sys.executable).with_name("exchange"))
        matcher = stack.spawn("matcher", [exchange, "matcher"])
        feed_port = port + 1
        feed = stack.spawn("feed", [exchange, "feed", "--host", host, "--port", str(feed_port)])
        services.wait_for_port(host, feed_port, 30, "the feed (exchange feed)", feed)
        ready_s = time.monotonic() - started
        say(f"ready in {ready_s:.1f} s")
        for svc in found:
            say(f"  {svc.name:<9} {svc.url}  ({svc.source})")
        say(f"  {'api':<9} http://{host}:{port}  (chalice local, stage local)")
        say(f"  {'matcher':<9} pid {matcher.pid}  (every product; `exchange check` audits it)")
        say(f"  {'feed':<9} ws://{host}:{feed_port}  (level2, ticker, matches, user)")
        for product_id, url in queue_urls.items():
            say(f"  queue     {product_id}: {url}")
        say("Ctrl-C stops everything this command started.")
        while not stopping:
            if api.poll() is not None:
                say(f"the API exited with code {api.returncode}; stopping")
                return 1
            if matcher.poll() is not None:
                say(f"the matcher exited with code {matcher.returncode}; stopping")
                return 1
            if feed.poll() is not None:
                say(f"the feed exited with code {feed.returncode}; stopping")
                return 1
            time.sleep(0.2)
        return 0
    finally:
        stack.down()
