"""The campaign service: campaigns, budgets and caps, prepaid booking with holds, underdelivery and
paused-campaign credits (rules C1-C5, W5, W9, W10, S3).

Layout: `domain` (pure rules, no I/O), `ports` (what the core needs, as small interfaces),
`adapters` (Kafka, PostgreSQL, HTTP), `inject` (all wiring), `main` (thin).
"""
