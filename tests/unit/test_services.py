"""Where each local service comes from (ops.services), without starting anything."""

import pytest

from ops import services


@pytest.mark.parametrize(
    ("env_url", "answers", "expected"),
    [
        ("postgresql://x/y", True, "env"),
        ("postgresql://x/y", False, "env"),
        (None, True, "running"),
        ("", True, "running"),
        (None, False, "embedded"),
    ],
)
def test_choose(env_url: str | None, answers: bool, expected: str) -> None:
    assert services.choose(env_url, answers) == expected


def test_environment_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:1/db")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert (services.postgres().source, services.redis().source, services.sqs().source) == (
        "env",
        "env",
        "env",
    )
    assert services.postgres().url == "postgresql://u@127.0.0.1:1/db"


def test_port_probe() -> None:
    assert services.port_open("127.0.0.1", services.free_port()) is False
