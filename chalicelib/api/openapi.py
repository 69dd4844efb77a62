"""The OpenAPI 3 document, assembled from what each route declares next to its handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string"}},
}


@dataclass(frozen=True)
class RouteDoc:
    path: str
    method: str
    summary: str
    tag: str
    status: int
    response: dict[str, Any] | None
    request: dict[str, Any] | None = None
    errors: tuple[int, ...] = ()
    parameters: tuple[dict[str, Any], ...] = field(default=())
    authenticated: bool = False


_ROUTES: list[RouteDoc] = []


def register(doc: RouteDoc) -> None:
    _ROUTES.append(doc)


def document(version: str = "0.1.0") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in _ROUTES:
        responses: dict[str, Any] = {
            str(r.status): {
                "description": "OK",
                **({"content": {"application/json": {"schema": r.response}}} if r.response else {}),
            }
        }
        for status in sorted({*r.errors, 400}):
            responses[str(status)] = {
                "description": "Error",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(r.path)
        ]
        op: dict[str, Any] = {
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": f"{r.method.lower()}_{r.path.strip('/').replace('/', '_') or 'root'}",
            "parameters": params + list(r.parameters),
            "responses": responses,
        }
        if r.authenticated:
            op["security"] = [
                {"session": []},
                {
                    "cbAccessKey": [],
                    "cbAccessSign": [],
                    "cbAccessTimestamp": [],
                    "cbAccessPassphrase": [],
                },
            ]
        if r.request is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": r.request}},
            }
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "exchange-orderbook",
            "version": version,
            "description": "Spot exchange REST API, wire-compatible with Coinbase Exchange.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "http", "scheme": "bearer"},
                "cbAccessKey": {"type": "apiKey", "in": "header", "name": "CB-ACCESS-KEY"},
                "cbAccessSign": {"type": "apiKey", "in": "header", "name": "CB-ACCESS-SIGN"},
                "cbAccessTimestamp": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "CB-ACCESS-TIMESTAMP",
                },
                "cbAccessPassphrase": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "CB-ACCESS-PASSPHRASE",
                },
            }
        },
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
