"""The faucet's route exists only when switched on in a `local` or `test` stage.

app.py decides when it is imported, so each case imports the app in a fresh interpreter with its
own environment (the test process itself has the faucet on: tests/conftest.py). An unregistered
route is answered by the gateway, 403 "Missing Authentication Token" as API Gateway does, before
any handler or service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.platform.config import DEPLOYED_MARKERS

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json
from chalice.test import Client
from app import app
from chalicelib.api import openapi

out = {
    "served": "/dev/faucet" in app.routes,
    "documented": "/dev/faucet" in openapi.document()["paths"],
}
if not out["served"]:
    with Client(app, stage_name=STAGE_NAME) as client:
        reply = client.http.post(
            "/dev/faucet", headers={"Content-Type": "application/json"}, body="{}"
        )
        out["status"] = reply.status_code
print(json.dumps(out))
"""


def _import_app(env: dict[str, str], client_stage: str = "test") -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STAGE", "EXCHANGE_FAUCET", *DEPLOYED_MARKERS)
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE.replace("STAGE_NAME", repr(client_stage))],
        cwd=ROOT,
        env=base | {"PYTHONPATH": str(ROOT)} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _probe(env: dict[str, str], client_stage: str = "test") -> dict[str, Any]:
    result = _import_app(env, client_stage)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("stage", ["local", "test"])
def test_switched_on_in_a_local_stage_it_is_served_and_documented(stage: str) -> None:
    assert _probe({"STAGE": stage, "EXCHANGE_FAUCET": "1"}) == {"served": True, "documented": True}


@pytest.mark.parametrize(
    ("env", "client_stage"),
    [
        ({"STAGE": "test"}, "test"),
        ({"STAGE": "local"}, "local"),
        ({}, "local"),  # no stage on a developer's machine: local, and still off
        ({"STAGE": "test", "EXCHANGE_FAUCET": "0"}, "test"),
        ({"STAGE": "prod", "EXCHANGE_FAUCET": "1"}, "prod"),
        # Deployed without a stage (or with one it does not know): prod, whatever the switch.
        ({"AWS_LAMBDA_FUNCTION_NAME": "exchange-api", "EXCHANGE_FAUCET": "1"}, "prod"),
        (
            {"ECS_CONTAINER_METADATA_URI_V4": "http://x", "STAGE": "dev", "EXCHANGE_FAUCET": "1"},
            "prod",
        ),
    ],
)
def test_otherwise_the_route_does_not_exist(env: dict[str, str], client_stage: str) -> None:
    assert _probe(env, client_stage) == {"served": False, "documented": False, "status": 403}


def test_an_unknown_stage_on_a_developers_machine_is_refused_at_import() -> None:
    result = _import_app({"STAGE": "staging", "EXCHANGE_FAUCET": "1"})
    assert result.returncode != 0
    assert "STAGE='staging' is not a stage" in result.stderr
