"""The SQS client, configured from settings (LocalStack or moto locally, AWS in prod)."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import Settings, settings

_clients: dict[tuple[str | None, str], Any] = {}
_lock = threading.Lock()

_BOTO_CONFIG = Config(
    connect_timeout=3,
    read_timeout=25,  # above the 20 s long poll
    retries={"max_attempts": 3, "mode": "standard"},
)


def stand_in_credentials(cfg: Settings) -> bool:
    """LocalStack and moto accept any credentials: locally, don't make developers invent some
    (unless they set their own)."""
    return bool(cfg.is_local and cfg.aws_endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"))


def sqs_client(cfg: Settings | None = None) -> Any:
    cfg = cfg or settings()
    key = (cfg.aws_endpoint_url, cfg.aws_region)
    with _lock:
        found = _clients.get(key)
        if found is None:
            kwargs: dict[str, Any] = {"region_name": cfg.aws_region, "config": _BOTO_CONFIG}
            if cfg.aws_endpoint_url:
                kwargs["endpoint_url"] = cfg.aws_endpoint_url
            if stand_in_credentials(cfg):
                kwargs["aws_access_key_id"] = "test"
                kwargs["aws_secret_access_key"] = "test"
            found = boto3.session.Session().client("sqs", **kwargs)
            _clients[key] = found
        return found
