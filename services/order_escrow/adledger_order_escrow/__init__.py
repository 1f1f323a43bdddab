"""The order-escrow service: orders held in escrow, 48-hour accept and dispute windows, release and
refund (rules O1-O6, W14, M4).

Layout: `domain` (pure rules, no I/O), `ports` (what the core needs, as small interfaces),
`adapters` (Kafka, PostgreSQL, HTTP), `inject` (all wiring), `main` (thin).
"""
