"""The invoicing service: top-ups that count only once paid, payments, prepayment and end-of-day invoices, alerts, monthly invoices (rules I1-I8, W11, W12).

Layout: `domain` (pure rules, no I/O), `ports` (what the core needs, as small interfaces),
`adapters` (Kafka, PostgreSQL, HTTP), `inject` (all wiring), `main` (thin).
"""
