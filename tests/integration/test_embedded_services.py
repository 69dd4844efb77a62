"""The embedded fallbacks `exchange dev` uses when nothing answers on the default ports."""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis

from ops import migrations, services


def test_embedded_postgres_starts_migrates_and_stops(tmp_path: Path) -> None:
    port = services.free_port()
    stop = services._start_embedded_postgres(tmp_path / "pgdata", port)
    url = f"postgresql://postgres@127.0.0.1:{port}/exchange"
    try:
        assert migrations.ensure_database(url) is True
        every = sorted(
            p.name.removesuffix(".sql")
            for p in migrations.MIGRATIONS_DIR.glob("*.sql")
            if not p.name.endswith(".rollback.sql")
        )
        assert len(every) >= 5
        assert migrations.migrate_up(url) == every
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0] >= "180000"  # type: ignore[index]
    finally:
        stop()
    assert not services.port_open("127.0.0.1", port)


def test_embedded_redis_starts_and_stops(tmp_path: Path) -> None:
    port = services.free_port()
    stop = services.start_embedded_redis(port, tmp_path)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        assert client.ping() is True
        client.close()
    finally:
        stop()
    assert not services.port_open("127.0.0.1", port)
