"""Translators between the spend_consumer core and Kafka, PostgreSQL and HTTP."""
