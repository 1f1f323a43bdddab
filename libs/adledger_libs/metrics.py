"""Prometheus metrics every service exposes on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_HANDLED = Counter(
    "adledger_messages_handled_total",
    "Kafka records handled by a consumer group, by outcome "
    "(applied, duplicate, redelivered, dead_lettered).",
    ["group", "topic", "outcome"],
)
BATCH_SECONDS = Histogram(
    "adledger_handler_batch_seconds",
    "Time to apply one batch of records in one database transaction.",
    ["group"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BATCH_RECORDS = Histogram(
    "adledger_handler_batch_records",
    "Records in one applied batch.",
    ["group"],
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
)
CONSUMER_LAG = Gauge(
    "adledger_consumer_lag_records",
    "Records on the partition not yet applied by the group (high watermark minus next offset).",
    ["group", "topic", "partition"],
)
OUTBOX_PUBLISHED = Counter(
    "adledger_outbox_published_total", "Events the outbox relay published to Kafka.", ["schema"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "adledger_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not yet published, per schema (0 when there is none): what the relay saw "
    "at its last round, aged to the time of the scrape, so it keeps growing while a relay is stuck.",
    ["schema"],
)
