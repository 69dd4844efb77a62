"""What a client sends, parsed without services: paging cursors and limits, signing headers,
JSON bodies and order amounts. Hostile values are refused with the client's error, never raised
as anything else."""

from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import pytest
from chalice.app import Request

from chalicelib.api.bodies import json_object
from chalicelib.core import paging
from chalicelib.core.errors import BadRequest
from chalicelib.identity import signing
from chalicelib.marketdata import candles
from chalicelib.trading import order_requests

UUID0 = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "value",
    ["9223372036854775808", "9" * 19, "\u00b2", "\u0661\u0662", "\uff11", "", "-1", " 1", "1e3"],
)
def test_int_cursor_refuses_what_is_not_a_bigint_in_ascii_digits(value: str) -> None:
    with pytest.raises(BadRequest, match="after must be a cursor"):
        paging.int_cursor(value, "after")


def test_int_cursor_takes_the_whole_bigint_range() -> None:
    assert paging.int_cursor("0", "after") == 0
    assert paging.int_cursor("9223372036854775807", "after") == 2**63 - 1


@pytest.mark.parametrize(
    "value",
    [
        f"999999999999999999_{UUID0}",
        f"253402300800000000_{UUID0}",
        f"\u00b2_{UUID0}",
        f"\u0661_{UUID0}",
        f"-1_{UUID0}",
        "1_not-a-uuid",
        "1",
    ],
)
def test_ts_cursor_refuses_times_out_of_range_and_foreign_digits(value: str) -> None:
    with pytest.raises(BadRequest, match="before must be a cursor"):
        paging.ts_cursor(value, "before")


def test_ts_cursor_round_trips_up_to_the_last_representable_microsecond() -> None:
    when, row_id = paging.ts_cursor(f"253402300799999999_{UUID0}", "before")
    assert paging.encode_ts_cursor(when, row_id) == f"253402300799999999_{UUID0}"


@pytest.mark.parametrize(
    "limit",
    ["\u00b2", "\u0661\u0660", "\uff15", "9" * 5000, "0", "1001"],
    ids=["superscript", "arabic-indic", "fullwidth", "5000 digits", "zero", "1001"],
)
def test_limit_is_ascii_digits_from_1_to_1000(limit: str) -> None:
    with pytest.raises(BadRequest, match="limit must be an integer"):
        paging.parse({"limit": limit})


def test_limit_accepts_plain_digits() -> None:
    assert paging.parse({"limit": "1000"}).limit == 1000
    assert paging.parse({"limit": "007"}).limit == 7


def test_a_non_ascii_signature_does_not_match_rather_than_raise() -> None:
    assert not signing.matches(b"secret", "\u00e9" * 44, "1", "GET", "/accounts", "")


@pytest.mark.parametrize(
    "timestamp",
    ["\uff11\uff17\uff10\uff10", "\u0661\u0667", "9" * 5000, "nan", "inf", "", "abc"],
)
def test_timestamps_are_ascii_unix_seconds(timestamp: str) -> None:
    assert not signing.timestamp_ok(timestamp, time.time())


def test_other_digits_of_now_are_not_a_timestamp() -> None:
    now = str(int(time.time()))
    assert signing.timestamp_ok(now, time.time())
    fullwidth = now.translate({ord("0") + i: 0xFF10 + i for i in range(10)})
    assert not signing.timestamp_ok(fullwidth, time.time())


def _body(raw: bytes) -> dict[str, Any]:
    return json_object(cast(Request, SimpleNamespace(raw_body=raw)))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, "nested too deeply"),
        (b'{"size":"1","size":"2"}', "duplicate key"),
        (b'{"a":{"b":1,"b":2}}', "duplicate key"),
        (b'{"email":"a\\u0000b"}', "without NUL"),
        (b'{"a":["x",{"b":"\\ud800"}]}', "without NUL"),
        (b'{"\\udfff":"x"}', "without NUL"),
        (b'{"size":' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
    ids=lambda value: value[:24].decode() if isinstance(value, bytes) else None,
)
def test_bodies_refuse_what_cannot_be_read_one_way(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        _body(raw)


def test_bodies_keep_paired_surrogates_and_decimals() -> None:
    assert _body(b'{"a":"\\ud83d\\udca9","n":1.10}') == {"a": "\U0001f4a9", "n": Decimal("1.10")}


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", 1), ("size", True), ("price", 100), ("price", 10**30), ("funds", 10), ("size", [])],
)
def test_order_amounts_are_decimal_strings_not_json_numbers(field: str, value: Any) -> None:
    body: dict[str, Any] = {"product_id": "BTC-USD", "side": "buy", "price": "100", "size": "1"}
    if field == "funds":
        body = {"product_id": "BTC-USD", "side": "buy", "type": "market"}
    body[field] = value
    with pytest.raises(BadRequest, match=f"^{field} must be a decimal string$"):
        order_requests.parse(body)


@pytest.mark.parametrize(
    "query",
    [
        {"granularity": "\u00b2"},
        {"granularity": "\u0666\u0660"},
        {"granularity": "6" * 5000},
        {"end": "1" + "0" * 20},
        {"end": "253402300800"},  # 10000-01-01T00:00:00Z
    ],
)
def test_candle_ranges_refuse_foreign_digits_and_times_past_year_9999(
    query: dict[str, str],
) -> None:
    with pytest.raises(BadRequest):
        candles.parse_range(query, time.time())
