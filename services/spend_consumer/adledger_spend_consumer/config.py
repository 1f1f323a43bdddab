"""Settings of the spend_consumer service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "spend_consumer"
    http_port: int = 8085
    #: The schema of the shared double-entry ledger (the wallet's; tests give each run its own).
    ledger_schema: str = "ledger"
    spend_topic: str = "ads.spend.v1"
    wallet_events_topic: str = "wallet.events.v1"
    balances_topic: str = "balances.v1"
    campaign_events_topic: str = "campaign.events.v1"
    delivery_control_topic: str = "delivery.control.v1"
    delivery_state_topic: str = "delivery.state.v1"
    spend_posted_topic: str = "spend.posted.v1"
    #: How often daily budgets and caps' periods are renewed (S3, W10); the job reads the clock.
    budget_period_poll_interval_ms: int = 60_000
    #: Send a spend's pause on delivery.control.v1 the moment it is decided, before the commit,
    #: under the event id of its outbox row (issue 14); off: every decision waits for the outbox.
    early_pauses: bool = True
    #: A spend batch may be capped by time as well as by records (issue 14,
    #: `adledger_libs.consumer.next_batch_records`). Off by default: measured, it cost 4-5x in
    #: throughput (smaller batches pay the fixed per-batch work more often) and gained no pause
    #: latency, which a backlog dominates (docs/performance.md).
    consumer_max_batch_ms: int = 0
    #: Applied spend event ids are forgotten after this long (issue 14): a day beyond the broker's
    #: default retention of ads.spend.v1 (7 days), within which ad servers re-send.
    processed_events_retention_hours: int = 8 * 24
    processed_events_prune_interval_ms: int = 3_600_000
