"""Candles rolled up from the 1-minute candles in Redis sum their volume exactly, however many
digits it has (a Decimal sum in the default context rounds past 28)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.market_keys import candle_value
from chalicelib.marketdata import candles


class _Pipeline:
    def __init__(self, minutes: dict[bytes, bytes]) -> None:
        self.minutes = minutes

    def get(self, _key: str) -> None:
        pass

    def hgetall(self, _key: str) -> None:
        pass

    def execute(self) -> list[Any]:
        return [b"0", self.minutes]


class _Redis:
    def __init__(self, minutes: dict[bytes, bytes]) -> None:
        self.minutes = minutes

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return _Pipeline(self.minutes)


def test_volume_of_many_digits_is_summed_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    p = PRODUCTS["ETH-USD"]
    low, high = "2000.00000000", "2001.00000000"
    volumes = ["99999999999999999999.12345678", "99999999999999999999.12345678", "0.00000001"]
    minutes = {
        str(60 * i).encode(): candle_value(low, high, low, high, v).encode()
        for i, v in enumerate(volumes)
    }
    monkeypatch.setattr(candles, "redis_client", lambda: _Redis(minutes))
    rows = candles._from_redis(p, 300, 0, 0)
    assert rows == [[0, low, high, low, high, "199999999999999999998.24691357"]]
