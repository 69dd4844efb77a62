"""Settings from the environment, with local defaults outside `prod`.

Read on every call rather than at import: the Lambda must import with no environment, and tests
change the environment between cases.

The stage fails closed: deployed (in a Lambda or an ECS task), a `STAGE` that is unset or names no
stage means `prod`, so a deployment that forgot it still requires its URLs and never gets a local
default; on a developer's machine an unset `STAGE` means `local` and an unknown one is refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOCAL_STAGES = frozenset({"local", "test"})
STAGES = LOCAL_STAGES | {"prod"}
# Set by the runtime itself in a Lambda and in an ECS task (v4 on Fargate 1.4+, v3 before).
DEPLOYED_MARKERS = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "ECS_CONTAINER_METADATA_URI_V4",
    "ECS_CONTAINER_METADATA_URI",
)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/exchange"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AWS_ENDPOINT_URL = "http://127.0.0.1:4566"
DEFAULT_REGION = "us-east-1"


class ConfigError(RuntimeError):
    """A setting that `prod` must be given is missing, or a setting is not valid."""


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


def stand_in_credentials(cfg: Settings) -> bool:
    """LocalStack and moto accept any credentials: locally, don't make developers invent some
    (unless they set their own)."""
    return bool(cfg.is_local and cfg.aws_endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"))


def _required(name: str, stage: str, local_default: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if stage in LOCAL_STAGES:
        return local_default
    raise ConfigError(f"{name} must be set in stage {stage!r}")


def deployed() -> bool:
    """Whether this process runs in a Lambda or an ECS task (the runtime says so)."""
    return any(os.environ.get(name) for name in DEPLOYED_MARKERS)


def current_stage() -> str:
    """The stage this process runs in: `local`, `test` or `prod` (see the module docstring)."""
    value = os.environ.get("STAGE", "").strip()
    if value in STAGES:
        return value
    if deployed():
        return "prod"
    if not value:
        return "local"
    raise ConfigError(f"STAGE={value!r} is not a stage: use one of {', '.join(sorted(STAGES))}")


def settings() -> Settings:
    stage = current_stage()
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


DEFAULT_API_KEY_ID = "1"
_KEY_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")


@dataclass(frozen=True, slots=True)
class ApiKeySecrets:
    """The configured 32-byte secrets behind API keys, by key id: the current one protects new
    keys, and every one of them (current and old) reads the keys written under it."""

    current_id: str
    by_id: Mapping[str, bytes]  # the current secret included


def api_key_secrets() -> ApiKeySecrets:
    """`API_KEY_ENCRYPTION_KEY` (base64) under the id `API_KEY_ENCRYPTION_KEY_ID` (default "1"),
    and `API_KEY_ENCRYPTION_KEYS_OLD`: the secrets rotated out that still read older keys, as
    `id:base64` items separated by commas.

    `prod` must be given the current secret (from a secret store). Local and test stages without
    one use a random secret kept in the state directory, so no secret is ever committed.
    """
    stage = current_stage()
    current_id = os.environ.get("API_KEY_ENCRYPTION_KEY_ID") or DEFAULT_API_KEY_ID
    if not _KEY_ID_RE.fullmatch(current_id):
        raise ConfigError("API_KEY_ENCRYPTION_KEY_ID must be 1 to 32 of A-Z a-z 0-9 . _ -")
    value = os.environ.get("API_KEY_ENCRYPTION_KEY")
    if value:
        current = _secret(value, "API_KEY_ENCRYPTION_KEY")
    elif stage in LOCAL_STAGES:
        current = _local_key_file()
    else:
        raise ConfigError(f"API_KEY_ENCRYPTION_KEY must be set in stage {stage!r}")
    by_id = {current_id: current}
    for item in (os.environ.get("API_KEY_ENCRYPTION_KEYS_OLD") or "").split(","):
        if not item.strip():
            continue
        key_id, colon, encoded = item.strip().partition(":")
        if not colon or not _KEY_ID_RE.fullmatch(key_id):
            raise ConfigError("API_KEY_ENCRYPTION_KEYS_OLD must be id:base64,id:base64,...")
        if key_id in by_id:
            raise ConfigError(
                f"API_KEY_ENCRYPTION_KEYS_OLD repeats the key id {key_id!r} (current or old)"
            )
        by_id[key_id] = _secret(encoded, f"API_KEY_ENCRYPTION_KEYS_OLD's key {key_id!r}")
    return ApiKeySecrets(current_id, by_id)


def _secret(encoded: str, name: str) -> bytes:
    """A base64 32-byte secret; the error names the setting, never the value."""
    try:
        secret = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        secret = b""
    if len(secret) != 32:
        raise ConfigError(f"{name} must be 32 bytes, base64-encoded")
    return secret


def _local_key_file() -> bytes:
    path = Path(os.environ.get("EXCHANGE_STATE_DIR", ".dev")) / "api-key-encryption.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default
