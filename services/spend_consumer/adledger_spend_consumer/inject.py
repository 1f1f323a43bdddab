"""All wiring of the spend_consumer service. Tests pass their own settings and clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from importlib.resources import files

from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_libs.clock import Clock
from adledger_libs.runtime import ServiceRuntime, clock_for

from adledger_spend_consumer.adapters import kafka
from adledger_spend_consumer.config import Settings
from adledger_spend_consumer.core import BudgetPeriods, ProcessedEventsPruning, SpendConsumer, Topics


@dataclass(frozen=True)
class Service:
    """The runtime, and the parts tests drive directly (the budget-period job, T1)."""

    runtime: ServiceRuntime
    consumer: SpendConsumer
    budget_periods: BudgetPeriods
    processed_events_pruning: ProcessedEventsPruning


def wire(settings: Settings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or Settings()
    clock = clock or clock_for(settings)
    runtime = ServiceRuntime(settings, migrations=files("adledger_spend_consumer") / "migrations", clock=clock)
    # The same ledger tables as the wallet (not a copy); whoever starts first migrates them.
    runtime.add_shared_schema(settings.ledger_schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
    topics = Topics(
        spend=settings.spend_topic,
        delivery_control=settings.delivery_control_topic,
        delivery_state=settings.delivery_state_topic,
        balances=settings.balances_topic,
        spend_posted=settings.spend_posted_topic,
    )
    consumer = SpendConsumer(
        PostgresLedger(settings.ledger_schema), clock, settings.consumer_group, topics,
        early_producer=(lambda: runtime.producer) if settings.early_pauses else None, pool=lambda: runtime.pool,
    )
    runtime.subscribe(*kafka.subscriptions(consumer, settings))
    budget_periods = BudgetPeriods(lambda: runtime.pool, lambda: runtime.relay, consumer)
    runtime.add_periodic_job("budget_periods", budget_periods.run, settings.budget_period_poll_interval_ms)
    pruning = ProcessedEventsPruning(
        lambda: runtime.pool, clock, settings.consumer_group, [settings.spend_topic],
        timedelta(hours=settings.processed_events_retention_hours),
    )
    runtime.add_periodic_job("processed_events_pruning", pruning.run, settings.processed_events_prune_interval_ms)
    return Service(runtime, consumer, budget_periods, pruning)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime
