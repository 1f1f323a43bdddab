"""Translators between the wallet core and Kafka, PostgreSQL and HTTP."""
