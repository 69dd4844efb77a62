"""Trading: placing, cancelling and reading orders, fills, accounts (balances, ledger, holds,
fees) and the development faucet.

Rule: services only (no HTTP); they use `messaging` to hand orders to the matcher and `core` for
money and balances. They never import `api` or `marketdata`.
"""
