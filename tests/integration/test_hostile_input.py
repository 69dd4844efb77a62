"""Hostile input on every route of the OpenAPI document: never a 5xx, and every error is
`{"message": str}` (API.md: nothing a client can send causes a 500).

Plain examples first, each a request the API once answered with a 500 or accepted against the
contract; then property-based runs over every route (the routes come from
`chalicelib.api.openapi.document()`, the body of `GET /openapi.json`): hostile query strings and
path parameters, hostile bodies and content types, and hostile credentials. The bounded runs take
seconds; the `slow` run mixes all three for longer (HOSTILE_EXAMPLES raises it for a soak run).

Header values hold no lone surrogates: HTTP carries bytes, which API Gateway and `chalice local`
decode to text that never contains one.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import app  # noqa: F401  (importing the app registers every route's OpenAPI entry)
from chalicelib.api import openapi
from chalicelib.core.catalog import ASSETS, PRODUCTS
from chalicelib.identity import sessions
from tests.conftest import JSON, Caller, signed

UUID0 = "00000000-0000-4000-8000-000000000000"
CURSOR_ERROR = "must be a cursor from CB-BEFORE or CB-AFTER"

# ------------------------------------------------------------------------ plain examples


def _reply(api: Any, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Any:
    reply = api.http.request(method, path, headers=headers, body=body)
    return reply.status_code, json.loads(reply.body)


PAGING_CASES = [
    (f"/orders?after=999999999999999999_{UUID0}", f"after {CURSOR_ERROR}"),
    (f"/orders?before=253402300800000000_{UUID0}", f"before {CURSOR_ERROR}"),
    ("/fills?product_id=BTC-USD&after=9999999999999999999", f"after {CURSOR_ERROR}"),
    ("/fills?product_id=BTC-USD&before=9223372036854775808", f"before {CURSOR_ERROR}"),
    ("/fills?product_id=BTC-USD&before=%C2%B2", f"before {CURSOR_ERROR}"),
    ("/orders?limit=%C2%B2", "limit must be an integer from 1 to 1000"),
    ("/orders?limit=%D9%A1%D9%A0", "limit must be an integer from 1 to 1000"),
    ("/orders?limit=" + "9" * 5000, "limit must be an integer from 1 to 1000"),
]


def test_overflowing_or_foreign_cursors_and_limits_are_400(make_user: Any) -> None:
    user: Caller = make_user()
    for path, message in PAGING_CASES:
        assert user.call("GET", path) == (400, {"message": message}), path[:80]
    account = user.call("GET", "/accounts")[1][0]["id"]
    big = "9999999999999999999"
    assert user.call("GET", f"/accounts/{account}/ledger?after={big}")[0] == 400
    assert user.call("GET", f"/accounts/{account}/holds?after=999999999999999999_{UUID0}")[0] == 400
    assert _reply(user.api, "GET", f"/products/BTC-USD/trades?after={big}", {}) == (
        400,
        {"message": f"after {CURSOR_ERROR}"},
    )


def test_trades_older_than_the_first_trade_are_an_empty_page(api: Any) -> None:
    for after in ("0", "1"):
        assert _reply(api, "GET", f"/products/BTC-USD/trades?after={after}", {}) == (200, [])


SIGNING_CASES = [
    ("CB-ACCESS-SIGN", "é" * 44, "invalid signature"),
    ("CB-ACCESS-SIGN", "not base64 at all!", "invalid signature"),
    ("CB-ACCESS-KEY", "\x00", "Invalid API Key"),
    ("CB-ACCESS-KEY", "ключ", "Invalid API Key"),
    ("CB-ACCESS-TIMESTAMP", "", "invalid timestamp"),
    ("CB-ACCESS-TIMESTAMP", "inf", "invalid timestamp"),
    ("CB-ACCESS-TIMESTAMP", "9" * 5000, "invalid timestamp"),
    ("CB-ACCESS-PASSPHRASE", "\x00", "Invalid Passphrase"),
]


def test_malformed_signing_headers_are_401(make_user: Any) -> None:
    user: Caller = make_user()
    key = user.new_key("view")
    for header, value, message in SIGNING_CASES:
        headers = signed(key, "GET", "/accounts") | {header: value}
        reply = user.call("GET", "/accounts", headers=headers)
        assert reply == (401, {"message": message}), (header, value[:20])
    # Other digits for now, signed as a client would: not unix seconds.
    fullwidth = str(int(time.time())).translate({ord("0") + i: 0xFF10 + i for i in range(10)})
    headers = signed(key, "GET", "/accounts", timestamp=fullwidth)
    assert user.call("GET", "/accounts", headers=headers) == (
        401,
        {"message": "invalid timestamp"},
    )


TEXT_ERROR = "request body text must be Unicode without NUL characters"
BODY_CASES = [
    ("/orders", b"[" * 5000 + b"]" * 5000, "request body is nested too deeply"),
    ("/orders", b'{"a":' * 2000 + b"1" + b"}" * 2000, "request body is nested too deeply"),
    (
        "/orders",
        b'{"product_id":"BTC-USD","side":"buy","price":"100","size":"1","size":"2"}',
        "request body has a duplicate key",
    ),
    ("/orders", b"{" + b" " * (1024 * 1024) + b"}", "request body too large"),
    ("/auth/signup", b'{"email":"a\\u0000b@example.com","password":"long enough pw"}', TEXT_ERROR),
    ("/auth/signup", b'{"email":"ab@example.com","password":"long enough \\ud800"}', TEXT_ERROR),
    ("/auth/login", b'{"email":"\\udfffb@example.com","password":"long enough pw"}', TEXT_ERROR),
    ("/api-keys", b'{"permissions":["view"],"passphrase":"\\ud800"}', TEXT_ERROR),
    ("/dev/faucet", b'{"currency":"USD","amount":' + b"[" * 2000 + b"]" * 2000 + b"}", None),
]


def test_unreadable_bodies_are_400(make_user: Any) -> None:
    user: Caller = make_user()
    for path, raw, message in BODY_CASES:
        status, body = _reply(user.api, "POST", path, user.headers(), raw)
        expected = message or "request body is nested too deeply"
        assert (status, body) == (400, {"message": expected}), (path, raw[:40])


ORDER_CASES = [
    ({"product_id": "BTC-USD", "side": "buy", "price": "100", "size": 1}, "size"),
    ({"product_id": "BTC-USD", "side": "buy", "price": 100, "size": "1"}, "price"),
    ({"product_id": "BTC-USD", "side": "sell", "type": "market", "size": 1}, "size"),
    ({"product_id": "BTC-USD", "side": "buy", "type": "market", "funds": 100}, "funds"),
    ({"product_id": "BTC-USD", "side": "buy", "price": "100", "size": True}, "size"),
]


def test_json_numbers_for_amounts_are_400(make_user: Any) -> None:
    user: Caller = make_user()
    user.fund("USD", "1000")
    user.fund("BTC", "1")
    for body, field in ORDER_CASES:
        assert user.call("POST", "/orders", body) == (
            400,
            {"message": f"{field} must be a decimal string"},
        ), body
    for amount in (1, 10**30, True):
        assert user.call("POST", "/dev/faucet", {"currency": "USD", "amount": amount}) == (
            400,
            {"message": "amount must be a decimal string"},
        ), amount
    assert [a["balance"] for a in user.call("GET", "/accounts")[1] if a["currency"] == "USD"] == [
        "1000.00000000"
    ]


def test_path_parameters_with_nul_are_404(make_user: Any) -> None:
    user: Caller = make_user()
    for method, path in [
        ("GET", "/currencies/\x00"),
        ("GET", "/products/BTC\x00"),
        ("DELETE", "/api-keys/\x00"),
        ("GET", "/orders/client:\x00"),
    ]:
        reply = user.api.http.request(method, path, headers=user.headers(), body=b"")
        assert (reply.status_code, json.loads(reply.body)) == (404, {"message": "NotFound"}), path


def test_candle_times_past_year_9999_and_foreign_digits_are_400(api: Any) -> None:
    for query in ["end=" + "9" * 20, "end=253402300800", "granularity=%C2%B2"]:
        status, body = _reply(api, "GET", f"/products/BTC-USD/candles?{query}", {})
        assert status == 400 and body["message"], query


# ------------------------------------------------------------------------ properties

Route = tuple[str, str, dict[str, Any]]  # path template, method, OpenAPI operation
ROUTES: list[Route] = sorted(
    (path, method.upper(), op)
    for path, ops in openapi.document()["paths"].items()
    for method, op in ops.items()
)
AUTHENTICATED = [r for r in ROUTES if r[2].get("security")]
WITH_BODY = [r for r in ROUTES if r[1] in ("POST", "DELETE")]

WORDS = [
    "", "0", "-1", "+1", " 1", "1 ", "1.5", "1e3", "1E400", "0x10", "1_000", "NaN", "inf",
    "-9223372036854775808", "9223372036854775807", "9223372036854775808", "9" * 20,
    "9" * 5000, "1" * 4301, f"999999999999999999_{UUID0}", f"253402300800000000_{UUID0}",
    f"-1_{UUID0}", f"1_{UUID0}x", "_", "1_", "\u0661\u0662\u0663", "\uff11\uff12\uff13",
    "\u00b2", "\U0001d7d7" * 2, "\u0669" * 25, "\x00", "a\x00b", "\x1b[31m", "\u202e",
    "\ufeff", "\U0001f4a9", "%00", "%", "..",
    "client:", "client:\x00", f"client:{UUID0}", "null", "[]", "{}", "' OR 1=1 --",
    "x" * 10_000,
]  # fmt: skip
hostile_text = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=30),
    st.integers().map(str),
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=25),
    st.text(st.characters(categories=["Cc"]), min_size=1, max_size=5),
)
DECIMALS = ["1", "0.01", "100.00", "0.0001", "0.001", "10", "30000.00", "1.", ".5", "00.1"]
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(DECIMALS),
    hostile_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
RAW_BODIES = [
    b"", b" ", b"null", b"[]", b"1", b'"x"', b"{", b"}", b"{'a': 1}", b"\xff\xfe\x00", b"\x00",
    b"\xef\xbb\xbf{}", b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b"{" + b" " * (1024 * 1024) + b"}",
    b'{"product_id":"BTC-USD","side":"buy","price":"100","size":"1","size":"2"}',
    b'{"email":"a\\u0000@b.co","password":"0123456789ab"}',
    b'{"email":"\\ud800@b.co","password":"\\udfff0123456789"}',
    b'{"price": NaN}', b'{"size": Infinity}', b'{"amount": 1e999}', b'{"amount": -0}',
    b'{"size": ' + b"9" * 5000 + b"}", '{"currency": "USD", "amount": "\u0661\u0660"}'.encode(),
    json.dumps({"currency": "USD", "amount": "1"}).encode("utf-16"), b"a=1&b=2",
    b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--",
]  # fmt: skip
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "text/plain", "", "*/*",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/octet-stream", "image/png", "application/xml", "application/json\x00",
]  # fmt: skip
SIGNATURE_WORDS = ["", "!!!", "é" * 44, "A" * 100_000, "AAAA", "=", "\x00"]
TIMESTAMP_WORDS = [
    "", "abc", "NaN", "nan", "inf", "-inf", "1e400", "-1", "0", "9" * 5000,
    "\u0661\u0667" + "\u0660" * 8, "\uff11\uff17" + "\uff10" * 8, f"{time.time():.0f}\x00",
    " ", "1_700_000_000",
]  # fmt: skip
CURSOR_WORDS = [
    "0", "-1", "1000", "1001", "9223372036854775807", "9223372036854775808", "9" * 19,
    "9" * 20, "9" * 5000, "\u00b2", "\u0661\u0662", "\uff11", f"\u00b2_{UUID0}",
    f"999999999999999999_{UUID0}", f"253402300800000000_{UUID0}", f"253402300799999999_{UUID0}",
]  # fmt: skip
KEY_WORDS = ["", "x" * 65, "é", "\x00", "ключ", uuid.uuid4().hex, "A" * 100_000]


@dataclass
class Target:
    api: Any
    user: Caller
    key: dict[str, str]
    account_id: str
    order_id: str

    def session(self) -> dict[str, str]:
        """A fresh session each time: a drawn request may be a logout."""
        return {"Authorization": f"Bearer {sessions.create(self.user.user_id).token}"}


@pytest.fixture
def target(api: Any, make_user: Any) -> Target:
    user: Caller = make_user()
    user.fund("USD", "100000")
    user.fund("BTC", "10")
    key = user.new_key("view", "trade", "transfer")
    account_id = user.call("GET", "/accounts")[1][0]["id"]
    status, order = user.call(
        "POST", "/orders", {"product_id": "BTC-USD", "side": "buy", "price": "100", "size": "1"}
    )
    assert status == 200, order
    return Target(api, user, key, account_id, order["id"])


def _segment(text: str) -> str:
    """A path segment the router still matches: no separators, not empty."""
    for ch in "/?#\t\r\n":
        text = text.replace(ch, "")
    return text or "x"


def _path(target: Target, data: st.DataObject, template: str, hostile: bool) -> str:
    valid = {
        "product_id": st.sampled_from(sorted(PRODUCTS)),
        "currency_id": st.sampled_from(sorted(ASSETS)),
        "account_id": st.sampled_from([target.account_id, UUID0]),
        "order_ref": st.sampled_from([target.order_id, f"client:{UUID0}", UUID0]),
        "key": st.just(uuid.uuid4().hex),  # never the signing key: revoking it ends the run
    }
    parts = []
    for part in template.split("/"):
        if part.startswith("{"):
            name = part[1:-1]
            choices = valid[name] | hostile_text.map(_segment) if hostile else valid[name]
            part = data.draw(choices, label=name)
        parts.append(part)
    return "/".join(parts)


def _query(data: st.DataObject, op: dict[str, Any]) -> str:
    names = [p["name"] for p in op["parameters"] if p["in"] == "query"]
    names += ["limit", "before", "after", "zz"]
    pair = st.sampled_from(names).flatmap(
        lambda name: st.tuples(
            st.just(name),
            st.sampled_from(CURSOR_WORDS) | hostile_text
            if name in ("limit", "before", "after")
            else hostile_text,
        )
    )
    return urlencode(data.draw(st.lists(pair, max_size=4), label="query"))


def _plausible(name: str, prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    if prop.get("type") == "array":
        return st.lists(st.sampled_from(prop["items"].get("enum") or ["x"]), max_size=3)
    if prop.get("type") == "boolean":
        return st.booleans()
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "product_id": st.sampled_from(sorted(PRODUCTS)),
        "currency": st.sampled_from(sorted(ASSETS)),
        "client_oid": st.uuids().map(str),
        "email": st.uuids().map(lambda u: f"h{u.hex[:12]}@example.com"),
        "password": st.text(min_size=10, max_size=20),
    }
    return by_name.get(name, st.sampled_from(DECIMALS) | st.text(max_size=20))


def _body(data: st.DataObject, op: dict[str, Any]) -> bytes:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    props = schema.get("schema", {}).get("properties", {})
    fields = {name: _plausible(name, prop) | json_value for name, prop in props.items()}
    objects = st.fixed_dictionaries({}, optional=fields | {"zz": json_value}).map(
        lambda body: json.dumps(body).encode()
    )
    anything = json_value.map(lambda value: json.dumps(value).encode())
    return data.draw(objects | st.sampled_from(RAW_BODIES) | anything, label="body")


def _signed(target: Target, method: str, path: str, body: bytes) -> dict[str, str]:
    return signed(target.key, method, path, body.decode("utf-8", errors="replace"))


BROKEN = {
    "CB-ACCESS-KEY": st.sampled_from(KEY_WORDS) | st.text(max_size=70),
    "CB-ACCESS-SIGN": st.sampled_from(SIGNATURE_WORDS) | st.text(max_size=50),
    "CB-ACCESS-TIMESTAMP": st.sampled_from(TIMESTAMP_WORDS) | hostile_text,
    "CB-ACCESS-PASSPHRASE": st.sampled_from(["", "\x00", "é", "x" * 100_000]) | st.text(),
}
BEARER = st.one_of(
    st.sampled_from(["Bearer ", "Bearer", "bearer  ", "Basic dXNlcjpwYXNz", ""]),
    hostile_text.map(lambda t: "Bearer " + t),
    hostile_text,
    st.just("Bearer " + "x" * 100_000),
)
# What a credentials case breaks: the bearer token, one signing header, or several at once.
BREAKS = ["Authorization", *sorted(BROKEN), "several"]


def _credentials(
    target: Target, data: st.DataObject, method: str, path: str, broken: str
) -> dict[str, str]:
    """Credentials for the request (which has no body) with `broken` broken."""
    if broken == "Authorization":
        return {"Authorization": data.draw(BEARER, label="authorization")}
    headers = _signed(target, method, path, b"")
    names = (
        [broken]
        if broken in BROKEN
        else data.draw(st.sets(st.sampled_from(sorted(BROKEN)), min_size=2), label="broken")
    )
    for name in sorted(names):
        if data.draw(st.integers(0, 3), label=f"drop {name}") == 0:
            del headers[name]
        else:
            headers[name] = data.draw(BROKEN[name], label=name)
    return headers


def _send(target: Target, op: dict[str, Any], method: str, path: str, **kw: Any) -> None:
    reply = target.api.http.request(method, path, **kw)
    status = reply.status_code
    documented = {int(code) for code in op["responses"]}
    where = f"{method} {path[:200]!r} -> {status} {reply.body[:300]!r}"
    assert status < 500 or status in documented, where
    assert 400 <= status < 500 or status in documented, where
    payload = json.loads(reply.body)
    if status >= 400:
        assert isinstance(payload, dict) and isinstance(payload.get("message"), str), where


def _query_and_path_case(target: Target, data: st.DataObject, route: Route) -> None:
    template, method, op = route
    path = _path(target, data, template, hostile=True)
    query = _query(data, op)
    url = f"{path}?{query}" if query else path
    headers = JSON | (target.session() if op.get("security") else {})
    _send(target, op, method, url, headers=headers, body=b"{}" if method == "POST" else b"")


def _body_case(target: Target, data: st.DataObject, route: Route) -> None:
    template, method, op = route
    path = _path(target, data, template, hostile=False)
    body = _body(data, op)
    headers = {"Content-Type": data.draw(st.sampled_from(CONTENT_TYPES), label="content type")}
    if op.get("security"):
        signer = st.sampled_from([target.session, lambda: _signed(target, method, path, body)])
        headers |= data.draw(signer, label="credentials")()
    _send(target, op, method, path, headers=headers, body=body)


def _credentials_case(target: Target, data: st.DataObject, broken: str) -> None:
    template, method, op = data.draw(st.sampled_from(AUTHENTICATED), label="route")
    path = _path(target, data, template, hostile=False)
    headers = JSON | _credentials(target, data, method, path, broken)
    _send(target, op, method, path, headers=headers, body=b"")


def _each(cases: list[Any], examples: int, case: Callable[[st.DataObject, Any], None]) -> None:
    """Run `case` on `examples` drawn examples for each of `cases` (a route, a header), so that
    a bounded run reaches every one of them."""
    for each in cases:
        _checker(case, each, examples)()


def _checker(
    case: Callable[[st.DataObject, Any], None], each: Any, examples: int
) -> Callable[[], None]:
    @settings(max_examples=examples, deadline=None, database=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case(data, each)

    return check


def test_every_route_survives_hostile_queries_and_path_parameters(target: Target) -> None:
    _each(ROUTES, 25, lambda data, route: _query_and_path_case(target, data, route))


def test_every_route_with_a_body_survives_hostile_bodies(target: Target) -> None:
    _each(WITH_BODY, 30, lambda data, route: _body_case(target, data, route))


def test_every_private_route_survives_hostile_credentials(target: Target) -> None:
    _each(BREAKS, 30, lambda data, broken: _credentials_case(target, data, broken))


@pytest.mark.slow
def test_every_route_survives_a_long_hostile_run(target: Target) -> None:
    examples = int(os.environ.get("HOSTILE_EXAMPLES", "100"))
    _each(ROUTES, examples, lambda data, route: _query_and_path_case(target, data, route))
    _each(WITH_BODY, examples, lambda data, route: _body_case(target, data, route))
    _each(BREAKS, examples, lambda data, broken: _credentials_case(target, data, broken))
