"""Code every adledger service shares, and nothing service-specific.

Only the adapter modules here (`kafka`, `db`, `outbox`, `consumer`, `http`, `runtime`) import
aiokafka, asyncpg or a web framework; `clock`, `money`, `events` and `settings` are pure.
"""
