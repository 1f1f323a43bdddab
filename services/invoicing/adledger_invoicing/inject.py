"""All wiring of the invoicing service. Tests pass their own settings and clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from adledger_invoicing.adapters import kafka, postgres
from adledger_invoicing.adapters.http import (
    REJECTIONS,
    InvoicingApi,
    add_plain_routes_to,
    answer_rejection,
    document_route,
    webhook_route,
)
from adledger_invoicing.adapters.local_provider import LocalPaymentProvider
from adledger_invoicing.config import Settings
from adledger_invoicing.core import ClockJobs, Invoicing
from adledger_invoicing.email import register_email_adapter
from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_libs.api import openapi_document, openapi_route, route
from adledger_libs.clock import Clock, SystemClock
from adledger_libs.outbox import unit_of_work
from adledger_libs.runtime import ServiceRuntime

OPENAPI_TITLE = "adledger invoicing"


@dataclass(frozen=True)
class Service:
    """The runtime, and the parts tests drive directly (the clock jobs, T1)."""

    runtime: ServiceRuntime
    invoicing: Invoicing
    jobs: ClockJobs
    local_provider: LocalPaymentProvider | None


def wire(settings: Settings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or Settings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings, migrations=files("adledger_invoicing") / "migrations", clock=clock)
    runtime.add_shared_schema(settings.ledger_schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
    invoicing = Invoicing(clock, PostgresLedger(settings.ledger_schema), events_topic=settings.events_topic)
    provider = (
        LocalPaymentProvider(secret=settings.payment_webhook_secret, webhook_url=lambda: settings.webhook_url, clock=clock)
        if settings.local_provider_on
        else None
    )
    endpoints = InvoicingApi(lambda: runtime.pool, lambda: runtime.relay, invoicing, provider).endpoints()
    runtime.add_routes(
        *(route(endpoint) for endpoint in endpoints),
        webhook_route(lambda: runtime.pool, lambda: runtime.relay, invoicing, settings.payment_webhook_secret, settings.payment_webhook_tolerance_s, clock),
        document_route(lambda: runtime.pool, invoicing),
        openapi_route(openapi(endpoints)),
    )
    for rejection in REJECTIONS:
        runtime.add_error_handler(rejection, answer_rejection)
    runtime.subscribe(
        *kafka.subscriptions(
            invoicing, settings.consumer_group, wallet_events_topic=settings.wallet_events_topic, balances_topic=settings.balances_topic,
            commands_topic=settings.commands_topic, spend_posted_topic=settings.spend_posted_topic,
        )
    )
    register_email_adapter(runtime, clock, events_topic=settings.events_topic)
    jobs = ClockJobs(lambda: runtime.pool, lambda: runtime.relay, invoicing, lambda: provider, settings.schema)
    runtime.add_periodic_job("invoicing_clock_jobs", jobs.run, settings.clock_jobs_poll_interval_ms)

    async def ensure_platform_operator() -> None:
        async with unit_of_work(runtime.pool) as uow:
            await postgres.insert_user(uow.conn, "platform", "Platform operator", settings.platform_token, admin=True, owner_ids=[], now=clock.now())

    runtime.add_startup_job(ensure_platform_operator)
    return Service(runtime, invoicing, jobs, provider)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


def openapi(endpoints: Any = None) -> dict[str, Any]:
    """The OpenAPI document, served at /openapi.json and checked in at schemas/openapi/invoicing.json."""
    if endpoints is None:
        endpoints = InvoicingApi(lambda: None, lambda: None, Invoicing(SystemClock(), PostgresLedger()), None).endpoints()  # type: ignore[arg-type,return-value]
    document = openapi_document(
        title=OPENAPI_TITLE,
        version="1",
        description="Top-ups that count only once paid (I1-I4), invoices and their states (I5), provider payments by "
        "signed webhook, funding sources (I6), monthly invoices (I7). Every command takes an Idempotency-Key header; "
        "every call but the provider's webhook a bearer token.",
        endpoints=endpoints,
    )
    return add_plain_routes_to(document)


def write_openapi(directory: Path) -> Path:
    path = directory / "invoicing.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(openapi(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    print(write_openapi(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas/openapi")))
