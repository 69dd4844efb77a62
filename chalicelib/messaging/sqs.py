"""The SQS clients, configured from settings (LocalStack or moto locally, AWS in prod): boto3
for queue administration, sqs_wire.py for the per-message calls. One of each per endpoint and
region, shared by a process's threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config

from chalicelib.messaging.sqs_wire import SqsWire
from chalicelib.platform.config import Settings, settings, stand_in_credentials

_clients: dict[tuple[str, str | None, str], Any] = {}
_lock = threading.Lock()

_BOTO_CONFIG = Config(
    connect_timeout=3,
    read_timeout=25,  # above the 20 s long poll
    retries={"max_attempts": 3, "mode": "standard"},
)


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


def _boto3(cfg: Settings) -> Any:
    kwargs: dict[str, Any] = {"region_name": cfg.aws_region, "config": _BOTO_CONFIG}
    if cfg.aws_endpoint_url:
        kwargs["endpoint_url"] = cfg.aws_endpoint_url
    if stand_in_credentials(cfg):
        kwargs["aws_access_key_id"] = "test"
        kwargs["aws_secret_access_key"] = "test"
    return boto3.session.Session().client("sqs", **kwargs)
