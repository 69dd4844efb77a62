"""The HTTP edge: route blueprints (`routes/`), the `route` decorator that maps errors to
responses and declares each route's OpenAPI entry, JSON bodies, rate limits and health.

Rule: routes parse, call a service of `trading`, `marketdata` or `identity`, and shape the reply.
Nothing below this package imports it.
"""
