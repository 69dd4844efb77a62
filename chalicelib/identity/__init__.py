"""Who is calling: users and passwords, login sessions, API keys and their secrets, Coinbase
request signing, and `auth.authenticate`, which turns a request into a `Principal`.

Rule: depends only on `core` and `platform`; trading and market data never reach into it except
through a `Principal` (the feed's user channel authenticates with it).
"""
