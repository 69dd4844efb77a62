import pytest

from chalicelib.platform import config


def test_local_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STAGE", "DATABASE_URL", "REDIS_URL", "AWS_ENDPOINT_URL", "QUEUE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    s = config.settings()
    assert (s.stage, s.database_url, s.redis_url, s.aws_endpoint_url, s.queue_prefix) == (
        "local",
        config.DEFAULT_DATABASE_URL,
        config.DEFAULT_REDIS_URL,
        config.DEFAULT_AWS_ENDPOINT_URL,
        "exchange-local",
    )


def test_prod_needs_explicit_urls_and_talks_to_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE", "prod")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with pytest.raises(config.ConfigError, match="DATABASE_URL"):
        config.settings()
    monkeypatch.setenv("DATABASE_URL", "postgresql://rds/exchange")
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6379/0")
    s = config.settings()
    assert s.aws_endpoint_url is None and s.queue_prefix == "exchange-prod"
