"""Translators between the invoicing core and Kafka, PostgreSQL and HTTP."""
