"""The double-entry ledger every service that moves money uses (wallet, spend consumer, escrow).

Shaped like TigerBeetle: accounts and immutable transfers, in integer micros, two-phase holds.
`domain` holds the rules (pure); `ports` the `Ledger` Protocol; `postgres` applies the rules to
the `ledger` schema; `fake` keeps them in memory for unit tests. See README.md.

Modules inside this package import each other relatively, and this file imports nothing, so
importing the pure `domain` never pulls in asyncpg.
"""
