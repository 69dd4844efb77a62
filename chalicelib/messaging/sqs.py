"""The SQS clients, configured from settings (LocalStack or moto locally, AWS in prod): boto3
for queue administration, sqs_wire.py for the per-message calls. One of each per endpoint and
region, shared by a process's threads.

The API sends inside a request whose Lambda has a timeout of its own, after the order's hold is
committed: its client (`api_message_client`) makes one attempt per call within a budget of
`API_SQS_BUDGET_S` seconds for the request (`api_send_budget_s`), and a send that does not fit is
left to the matcher's sweeper. The matcher's client waits out the long poll and retries.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
import urllib3
from botocore.config import Config

from chalicelib.messaging.sqs_wire import SqsWire
from chalicelib.platform.config import ConfigError, Settings, settings, stand_in_credentials

_clients: dict[tuple[str, str | None, str], Any] = {}
_lock = threading.Lock()

_BOTO_CONFIG = Config(
    connect_timeout=3,
    read_timeout=25,  # above the 20 s long poll
    retries={"max_attempts": 3, "mode": "standard"},
)

API_BUDGET_ENV = "API_SQS_BUDGET_S"
DEFAULT_API_BUDGET_S = 1.0
# At most half the prod Lambda's timeout (`lambda_timeout` in .chalice/config.json), so that a
# request whose send runs out of time still has the time to answer.
MAX_API_BUDGET_S = 5.0

T = TypeVar("T")


def _cached(kind: str, cfg: Settings | None, make: Callable[[Settings], T]) -> T:
    cfg = cfg or settings()
    key = (kind, cfg.aws_endpoint_url, cfg.aws_region)
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = make(cfg)
        return found  # type: ignore[no-any-return]


def sqs_client(cfg: Settings | None = None) -> Any:
    return _cached("boto3", cfg, _boto3)


def message_client(cfg: Settings | None = None) -> SqsWire:
    """The client for sending, receiving and deleting messages."""
    return _cached("wire", cfg, lambda c: SqsWire(c, connections=8))


def api_message_client(cfg: Settings | None = None) -> SqsWire:
    """The client the API sends with: one attempt per call, no retries (a send that fails or
    runs out of time is the sweeper's); bound it to the request's budget with `until`."""
    return _cached(
        "api",
        cfg,
        lambda c: SqsWire(
            c,
            connections=8,
            timeout=urllib3.Timeout(total=DEFAULT_API_BUDGET_S),
            retries=False,
        ),
    )


def api_send_budget_s() -> float:
    """Seconds the API may spend on SQS in one request, connect and read together
    (`API_SQS_BUDGET_S`, default 1)."""
    value = os.environ.get(API_BUDGET_ENV)
    if not value:
        return DEFAULT_API_BUDGET_S
    try:
        budget = float(value)
    except ValueError:
        budget = math.nan
    if not 0 < budget <= MAX_API_BUDGET_S:  # NaN fails too
        raise ConfigError(
            f"{API_BUDGET_ENV} must be seconds above 0 and at most {MAX_API_BUDGET_S:g}: {value!r}"
        )
    return budget


def _boto3(cfg: Settings) -> Any:
    kwargs: dict[str, Any] = {"region_name": cfg.aws_region, "config": _BOTO_CONFIG}
    if cfg.aws_endpoint_url:
        kwargs["endpoint_url"] = cfg.aws_endpoint_url
    if stand_in_credentials(cfg):
        kwargs["aws_access_key_id"] = "test"
        kwargs["aws_secret_access_key"] = "test"
    return boto3.session.Session().client("sqs", **kwargs)
