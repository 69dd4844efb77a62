"""The local WebSocket market data feed (`exchange feed`) and a small client for it."""
