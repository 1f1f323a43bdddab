"""Translators between the order_escrow core and Kafka, PostgreSQL and HTTP."""
