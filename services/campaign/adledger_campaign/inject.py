"""All wiring of the campaign service, and the only module that names PostgreSQL. Tests pass
their own settings, clock and topics."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from adledger_libs.clock import Clock
from adledger_libs.runtime import ServiceRuntime, clock_for
from adledger_libs.web import Commands, OpenApiDocument

from adledger_campaign.adapters import http, kafka
from adledger_campaign.adapters.postgres import PostgresCampaignUnitOfWork, next_deadline, transactions
from adledger_campaign.config import Settings
from adledger_campaign.core import Campaigns, DueDeadlines, Topics

TITLE = "adledger campaign"
DESCRIPTION = (
    "Campaigns (drawdown or prepaid), their budgets, pauses and ends (C1-C5), and ad-account budget caps "
    "(W9, W10). A prepaid campaign books its budget as wallet holds, an invoice covers a shortfall, an underdelivery "
    "is credited 48 hours after the end. Every call takes the platform's bearer token (a session token from the "
    "identity service, or an API key scoped to `campaigns`); every command an Idempotency-Key header. What is in a "
    "Business Center the caller holds no role in is answered 404, like what does not exist."
)


@dataclass(frozen=True)
class Service:
    """The runtime, and the parts tests drive directly (the deadline job, T1)."""

    runtime: ServiceRuntime
    campaigns: Campaigns
    deadlines: DueDeadlines


def wire(settings: Settings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or Settings()
    clock = clock or clock_for(settings)
    runtime = ServiceRuntime(settings, migrations=files("adledger_campaign") / "migrations", clock=clock)
    topics = Topics(
        campaign_events=settings.events_topic, wallet_commands=settings.wallet_commands_topic,
        invoicing_commands=settings.invoicing_commands_topic,
    )
    campaigns = Campaigns(clock, topics, minimum_budget_micros=settings.minimum_budget_micros)
    runtime.verify_callers()
    commands = Commands(lambda: runtime.pool, lambda: runtime.relay, service=settings.service_name)
    runtime.add_router(http.router(campaigns, commands, PostgresCampaignUnitOfWork))
    runtime.describe_api(
        title=TITLE, description=DESCRIPTION, rejections=http.REJECTIONS, public_paths=http.PUBLIC_PATHS
    )
    runtime.subscribe(*kafka.subscriptions(
        campaigns, PostgresCampaignUnitOfWork, wallet_topic=settings.wallet_events_topic,
        spend_topic=settings.spend_posted_topic, delivery_topic=settings.delivery_control_topic,
    ))
    deadlines = DueDeadlines(transactions(lambda: runtime.pool, lambda: runtime.relay), campaigns)
    runtime.add_periodic_job(
        "campaign_deadlines", deadlines.run, settings.deadline_poll_interval_ms, next_due=lambda: next_deadline(runtime.pool)
    )
    return Service(runtime, campaigns, deadlines)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


#: The OpenAPI document (no database needed);
#: `python -m adledger_campaign.inject` writes schemas/openapi/campaign.json.
DOCUMENT = OpenApiDocument("campaign", lambda: build(Settings(profile="local")).http_app())
openapi = DOCUMENT.document
openapi_document = DOCUMENT.text
write_openapi = DOCUMENT.write


if __name__ == "__main__":
    import sys

    DOCUMENT.main(sys.argv)
