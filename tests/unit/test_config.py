import pytest

from chalicelib.platform import config


@pytest.fixture(autouse=True)
def on_a_developers_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """No runtime marker of a Lambda or an ECS task, whatever runs the tests."""
    for name in config.DEPLOYED_MARKERS:
        monkeypatch.delenv(name, raising=False)


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


@pytest.mark.parametrize("marker", config.DEPLOYED_MARKERS)
@pytest.mark.parametrize("stage", [None, "", "staging", "Prod"])
def test_deployed_an_unset_or_unknown_stage_is_prod(
    monkeypatch: pytest.MonkeyPatch, marker: str, stage: str | None
) -> None:
    monkeypatch.setenv(marker, "exchange-api" if marker.startswith("AWS") else "http://169.254.1.1")
    if stage is None:
        monkeypatch.delenv("STAGE", raising=False)
    else:
        monkeypatch.setenv("STAGE", stage)
    for name in ("DATABASE_URL", "REDIS_URL", "AWS_ENDPOINT_URL", "API_KEY_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert config.current_stage() == "prod"
    # No local default: the URLs and the key must be given.
    with pytest.raises(config.ConfigError, match="DATABASE_URL must be set in stage 'prod'"):
        config.settings()
    with pytest.raises(config.ConfigError, match="API_KEY_ENCRYPTION_KEY"):
        config.api_key_secrets()
    monkeypatch.setenv("DATABASE_URL", "postgresql://rds/exchange")
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6379/0")
    s = config.settings()
    assert (s.stage, s.is_local, s.aws_endpoint_url) == ("prod", False, None)


def test_deployed_a_known_stage_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "exchange-api")
    monkeypatch.setenv("STAGE", "test")
    assert config.current_stage() == "test"


def test_locally_an_unknown_stage_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE", "staging")
    with pytest.raises(config.ConfigError, match="STAGE='staging' is not a stage"):
        config.settings()
    with pytest.raises(config.ConfigError, match="is not a stage"):
        config.api_key_secrets()
