"""Everything the API Lambda runs, in packages by concern. Each package says its rule in its own
docstring; `make lint` checks the arrows (import-linter contracts in pyproject.toml).

    api/         the HTTP edge: route blueprints, the route decorator, bodies, OpenAPI, rate limits
    trading/     orders, fills, accounts, the faucet
    marketdata/  products, currencies, book, ticker, trades, candles, the WebSocket feed protocol
    identity/    users, passwords, sessions, API keys, request signing, who is calling
    messaging/   the product queues: their definition, their messages, the SQS clients
    core/        money, the catalog, balances, wire formats, errors, paging, market-data layout
    platform/    configuration, Postgres, Redis, logs

Higher packages import lower ones, never the reverse. The matcher imports only the shared part:
`core`, `messaging` and `platform`.
"""
