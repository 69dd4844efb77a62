"""How a route is declared: JSON replies, errors mapped in one place, an OpenAPI entry.

Chalice has already turned a view's exception into a response before any middleware runs, so the
mapping lives in this decorator, which every route uses.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import redis
from chalice import Blueprint, Response
from chalice.app import BadRequestError, Request

from chalicelib.api import openapi, ratelimit
from chalicelib.api.bodies import text_ok
from chalicelib.core.errors import ApiError, Forbidden, NotFound
from chalicelib.core.money import MoneyError
from chalicelib.identity.auth import authenticate
from chalicelib.platform.logs import logger

JSON_HEADERS: dict[str, str | list[str]] = {"Content-Type": "application/json"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={**JSON_HEADERS, **(headers or {})},
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"message": message}, status, headers)


def client_ip(request: Request) -> str:
    """The caller's address as API Gateway (or `chalice local`) saw it."""
    return str((request.context or {}).get("identity", {}).get("sourceIp") or "?")


def check_path_parameters(values: dict[str, Any]) -> None:
    """A path parameter names a row; text that no row can hold (NUL, a lone surrogate) names
    none, and Postgres would refuse to compare it."""
    if not all(text_ok(v) for v in values.values() if isinstance(v, str)):
        raise NotFound("NotFound")


def route(
    bp: Blueprint,
    path: str,
    *,
    methods: tuple[str, ...] = ("GET",),
    summary: str,
    tag: str,
    response: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    parameters: tuple[dict[str, Any], ...] = (),
    auth: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a route. With `auth` ("view", "trade", "transfer", or "session" for routes only a
    logged-in user may call), the view gets the caller's Principal as its first argument, and the
    caller's private rate limit applies; without it the public limit per client IP applies."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for method in methods:
            openapi.register(
                openapi.RouteDoc(
                    path,
                    method,
                    summary,
                    tag,
                    status,
                    response,
                    request,
                    (*errors, 401, 403, 429, 503) if auth else (*errors, 429),
                    parameters,
                    authenticated=auth is not None,
                )
            )

        @functools.wraps(fn)
        def view(*args: Any, **kwargs: Any) -> Response:
            try:
                req = bp.current_request
                ip = client_ip(req)
                if auth is None:
                    ratelimit.take(ratelimit.public_bucket(ip), fail_open=True)
                    check_path_parameters(kwargs)
                    result = fn(*args, **kwargs)
                else:
                    # The per-IP token is taken with the failure budgets' check, in one call
                    # and before the credentials are looked up.
                    principal = authenticate(
                        req,
                        None if auth == "session" else auth,
                        ip=ip,
                        also=(ratelimit.credentials_ip_bucket(ip),),
                    )
                    if auth == "session" and principal.token is None:
                        raise Forbidden("this route needs a logged-in session, not an API key")
                    ratelimit.take(ratelimit.user_bucket(principal.user_id), fail_open=False)
                    check_path_parameters(kwargs)
                    result = fn(principal, *args, **kwargs)
            except ApiError as exc:
                return error_response(exc.status, exc.message, exc.headers)
            except MoneyError as exc:
                return error_response(400, str(exc))
            except BadRequestError as exc:  # Chalice's own: a body that is not JSON
                return error_response(400, str(exc) or "Invalid JSON body")
            except redis.RedisError:
                # Redis away where a route cannot do without it: authentication and its limits
                # fail closed (identity.guard, ratelimit.take). A dependency that is down is a
                # 503 the client may retry, not a 500.
                logger.warning("redis unavailable", extra={"path": path}, exc_info=True)
                return error_response(503, "Service unavailable, try again later")
            except Exception:
                logger.exception("unhandled error", extra={"path": path})
                return error_response(500, "Internal server error")
            if isinstance(result, Response):
                return result
            return json_response(result, status)

        # Any content type reaches the view, which reads the raw body itself: a client that
        # forgets its Content-Type gets our {"message"} answer, not Chalice's own 415 shape.
        bp.route(path, methods=list(methods), content_types=["*/*"])(view)
        return fn

    return decorate
