"""The wallet: owns every balance. A double-entry ledger (accounts and immutable transfers, two-phase holds), Business Centers and ad accounts with their buckets, Automatic Balance Allocation, roles, real and virtual balances (rules M1-M5, W1-W14).

Layout: `domain` (pure rules, no I/O), `ports` (what the core needs, as small interfaces),
`adapters` (Kafka, PostgreSQL, HTTP), `inject` (all wiring), `main` (thin).
"""
