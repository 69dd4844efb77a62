"""Market data as the matcher writes it: after each committed batch, `publisher` writes the
book changes, ticker, trades, candles and one feed message to Redis in one MULTI/EXEC.

The pieces it writes are computed here, each in a module of its own and none touching Redis:
`book_diff` (which levels and orders a batch changed), `feed_messages` (the Coinbase-shaped feed
messages), `candles` and `ticker`, and `wire_strings` (cached price and size strings). The
layout in Redis is `chalicelib.core.market_keys`, which the readers share.
"""
