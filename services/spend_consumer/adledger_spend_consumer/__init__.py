"""The spend consumer: takes ad servers' spend events and decrements the shared balance exactly once, pausing delivery the moment the funds reach zero (rules S1-S6, W7, W8).

Layout: `domain` (pure rules, no I/O), `ports` (what the core needs, as small interfaces),
`adapters` (Kafka, PostgreSQL, HTTP), `inject` (all wiring), `main` (thin).
"""
