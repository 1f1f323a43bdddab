"""Translators between the campaign core and Kafka, PostgreSQL and HTTP."""
