"""The platform: settings from the environment, the Postgres pools, the Redis clients and the
structured logger. Each is created lazily on first use, so everything imports with no
environment.

Rule: the bottom layer; it imports nothing else of ours.
"""
