"""Settings from the environment, with local defaults outside `prod`.

Read on every call rather than at import: the Lambda must import with no environment, and tests
change the environment between cases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LOCAL_STAGES = frozenset({"local", "test"})

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/exchange"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AWS_ENDPOINT_URL = "http://127.0.0.1:4566"
DEFAULT_REGION = "us-east-1"


class ConfigError(RuntimeError):
    """A setting that `prod` must be given is missing."""


@dataclass(frozen=True, slots=True)
class Settings:
    stage: str
    database_url: str
    redis_url: str
    aws_endpoint_url: str | None  # None means the real AWS endpoints
    aws_region: str
    queue_prefix: str

    @property
    def is_local(self) -> bool:
        return self.stage in LOCAL_STAGES


def _required(name: str, stage: str, local_default: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if stage in LOCAL_STAGES:
        return local_default
    raise ConfigError(f"{name} must be set in stage {stage!r}")


def settings() -> Settings:
    stage = os.environ.get("STAGE", "local")
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or (
        DEFAULT_AWS_ENDPOINT_URL if stage in LOCAL_STAGES else None
    )
    return Settings(
        stage=stage,
        database_url=_required("DATABASE_URL", stage, DEFAULT_DATABASE_URL),
        redis_url=_required("REDIS_URL", stage, DEFAULT_REDIS_URL),
        aws_endpoint_url=endpoint,
        aws_region=os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION,
        queue_prefix=os.environ.get("QUEUE_PREFIX") or f"exchange-{stage}",
    )
