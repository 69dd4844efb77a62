"""Market data as clients read it: products and currencies, the book, ticker, stats, trades and
candles (Redis first, Postgres behind it), and the WebSocket feed's protocol and its API Gateway
handlers.

Rule: readers only. The matcher writes market data; the layout both sides share is
`core.market_keys`. The feed's `user` channel authenticates through `identity`.
"""
