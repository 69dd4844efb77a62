"""An SQS endpoint on the host: LocalStack (preferred) or, failing that, moto in server mode.

LocalStack 2026.3 needs Python 3.13, so it lives in a venv of its own, kept outside the work tree
(~/.cache/exchange-orderbook) so that fresh clones on the same machine reuse it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

LOCALSTACK_VERSION = "2026.3.0"
LOCALSTACK_REQUIREMENTS = [
    f"localstack-core[runtime]=={LOCALSTACK_VERSION}",
    "cbor2<6",
    "pyopenssl==24.3.0",
    "cryptography==44.0.3",
    "service-identity==24.2.0",
]
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "exchange-orderbook"
LOCALSTACK_VENV = CACHE_DIR / f"localstack-{LOCALSTACK_VERSION}"


def log(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


def find_python313() -> str | None:
    """A Python 3.13 to run LocalStack: $LOCALSTACK_PYTHON, python3.13 on PATH, or pyenv's."""
    explicit = os.environ.get("LOCALSTACK_PYTHON")
    if explicit:
        return explicit
    candidates = [shutil.which("python3.13")]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.13*/bin/python3.13")))
    for found in candidates:
        if found and subprocess.run([found, "--version"], capture_output=True).returncode == 0:
            return found
    return None


def ensure_localstack() -> Path | None:
    """The venv's python with LocalStack installed (installing it the first time)."""
    python = LOCALSTACK_VENV / "bin" / "python"
    marker = LOCALSTACK_VENV / ".installed"
    if marker.exists() and python.exists():
        return python
    base = find_python313()
    if base is None:
        return None
    log(f"installing LocalStack {LOCALSTACK_VERSION} into {LOCALSTACK_VENV} (once)")
    shutil.rmtree(LOCALSTACK_VENV, ignore_errors=True)
    subprocess.run([base, "-m", "venv", str(LOCALSTACK_VENV)], check=True)
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *LOCALSTACK_REQUIREMENTS,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        log(f"LocalStack install failed:\n{result.stderr[-2000:]}")
        return None
    marker.write_text(LOCALSTACK_VERSION)
    return python


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=1) as resp:
            services = json.load(resp).get("services", {})
            return services.get("sqs") in {"available", "running"}
    except (OSError, ValueError):
        return False


def _moto_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def start(host: str, port: int, state_dir: Path) -> tuple[str, Callable[[], None]]:
    """Start LocalStack, or moto if LocalStack cannot run here; returns (kind, stop)."""
    from ops.services import terminate  # a cycle at import time otherwise

    state_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    python = ensure_localstack()
    if python is not None:
        env = os.environ | {
            "OVERRIDE_IN_DOCKER": "0",
            "GATEWAY_LISTEN": f"{host}:{port}",
            "LOCALSTACK_HOST": f"{host}:{port}",
            "SQS_ENDPOINT_STRATEGY": "path",
            "FILESYSTEM_ROOT": str(state_dir / "localstack"),
            "SERVICES": "sqs,cloudformation,apigateway,sts,iam",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
        }
        logfile = open(state_dir / "localstack.log", "ab")  # noqa: SIM115 - lives with the server
        proc = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"],
            env=env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if _ready(url):
                return "localstack", lambda: terminate(proc, grace=15)
            time.sleep(0.2)
        terminate(proc)
        log(f"LocalStack did not become ready; see {state_dir / 'localstack.log'}")
    log(
        "WARNING: falling back to moto in server mode for SQS. It slows down sharply with queue "
        "backlog and forgets deduplication ids once a message is deleted: fine for small tests, "
        "not for load or deduplication tests."
    )
    logfile = open(state_dir / "moto.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not _moto_ready(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            terminate(proc)
            raise RuntimeError(f"moto server did not start; see {state_dir / 'moto.log'}")
        time.sleep(0.1)
    return "moto", lambda: terminate(proc)
