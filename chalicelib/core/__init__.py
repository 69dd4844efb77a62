"""The shared core: exact money and wire formats, the catalog of assets and products, the one
way a balance changes, the errors a service raises, cursor paging, and the market data layout in
Redis and Postgres.

Rule: no HTTP and no queues; the matcher and every service build on it. Depends only on
`platform`.
"""
