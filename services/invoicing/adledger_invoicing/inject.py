"""All wiring of the invoicing service: the only module that names PostgreSQL. Tests pass their
own settings, clock and (for the clock jobs) payment provider."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from adledger_ledger.postgres import PostgresLedger
from adledger_libs.clock import Clock
from adledger_libs.runtime import ServiceRuntime, clock_for
from adledger_libs.web import Commands, OpenApiDocument

from adledger_invoicing.adapters import http, kafka
from adledger_invoicing.adapters.local_provider import LocalPaymentProvider
from adledger_invoicing.adapters.postgres import PostgresTransactions, work_factory
from adledger_invoicing.config import Settings
from adledger_invoicing.core import ClockJobs, Invoicing
from adledger_invoicing.email import register_email_adapter
from adledger_invoicing.ports.payments import PaymentProvider

TITLE = "adledger invoicing"
DESCRIPTION = (
    "Top-ups that count only once paid (I1-I4), invoices and their states (I5), provider payments by signed webhook, "
    "funding sources (I6), monthly invoices (I7). Callers sign in once with the platform's identity: an owner's "
    "billing "
    "follows the roles of its Business Center (W9), subscriptions and funding sources are the platform operator's. "
    "Every command takes an Idempotency-Key header; every call but the provider's webhook a bearer token."
)


@dataclass(frozen=True)
class Service:
    """The runtime, and the parts tests drive directly (the clock jobs, T1)."""

    runtime: ServiceRuntime
    invoicing: Invoicing
    jobs: ClockJobs
    local_provider: LocalPaymentProvider | None
    transactions: PostgresTransactions


def wire(
    settings: Settings | None = None, clock: Clock | None = None, *, provider: PaymentProvider | None = None
) -> Service:
    settings = settings or Settings()
    clock = clock or clock_for(settings)
    runtime = ServiceRuntime(settings, migrations=files("adledger_invoicing") / "migrations", clock=clock)
    # The ledger's schema is migrated by its one owner, the wallet; this service only uses it.
    runtime.verify_callers()
    invoicing = Invoicing(clock, PostgresLedger(settings.ledger_schema), events_topic=settings.events_topic)
    work_of = work_factory(settings.schema)
    commands = Commands(lambda: runtime.pool, lambda: runtime.relay, service=settings.service_name)
    runtime.add_router(
        http.router(
            invoicing,
            commands,
            work_of,
            webhook_secret=settings.payment_webhook_secret,
            webhook_tolerance_s=settings.payment_webhook_tolerance_s,
            clock=clock,
        )
    )
    # Issue 12: the local provider can pay any invoice, so it exists in the local profile only.
    local_provider = (
        LocalPaymentProvider(
            secret=settings.payment_webhook_secret, webhook_url=lambda: settings.webhook_url, clock=clock
        )
        if settings.local_provider_on
        else None
    )
    if local_provider is not None:
        runtime.add_router(http.local_provider_router(invoicing, commands, work_of, local_provider))
    runtime.describe_api(
        title=TITLE, description=DESCRIPTION, rejections=http.REJECTIONS, public_paths=http.PUBLIC_PATHS
    )
    runtime.subscribe(
        *kafka.subscriptions(
            invoicing,
            work_of,
            wallet_events_topic=settings.wallet_events_topic,
            balances_topic=settings.balances_topic,
            commands_topic=settings.commands_topic,
            spend_posted_topic=settings.spend_posted_topic,
        )
    )
    register_email_adapter(runtime, clock, events_topic=settings.events_topic, orders_topic=settings.orders_events_topic)
    transactions = PostgresTransactions(lambda: runtime.pool, lambda: runtime.relay, lock_namespace=settings.schema)
    jobs = ClockJobs(
        transactions,
        invoicing,
        provider or local_provider,
        card_collection_retry_after_s=settings.card_collection_retry_after_s,
    )
    runtime.add_periodic_job("invoicing_clock_jobs", jobs.run, settings.clock_jobs_poll_interval_ms)
    return Service(runtime, invoicing, jobs, local_provider, transactions)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


#: The OpenAPI document (the production document: no local provider);
#: `python -m adledger_invoicing.inject` writes schemas/openapi/invoicing.json.
DOCUMENT = OpenApiDocument("invoicing", lambda: build(Settings(profile="production")).http_app())
openapi = DOCUMENT.document
openapi_document = DOCUMENT.text
write_openapi = DOCUMENT.write


if __name__ == "__main__":
    import sys

    DOCUMENT.main(sys.argv)
