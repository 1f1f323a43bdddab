"""All wiring of the campaign service. Tests pass their own settings, clock and topics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from adledger_campaign.adapters import kafka, postgres
from adledger_campaign.adapters.http import REJECTIONS, CampaignApi, answer_rejection
from adledger_campaign.config import Settings
from adledger_campaign.core import Campaigns, DueDeadlines, Topics
from adledger_libs.api import openapi_document, openapi_route, route
from adledger_libs.clock import Clock, SystemClock
from adledger_libs.outbox import unit_of_work
from adledger_libs.runtime import ServiceRuntime

OPENAPI_TITLE = "adledger campaign"


@dataclass(frozen=True)
class Service:
    """The runtime, and the parts tests drive directly (the deadline job, T1)."""

    runtime: ServiceRuntime
    campaigns: Campaigns
    deadlines: DueDeadlines


def wire(settings: Settings | None = None, clock: Clock | None = None, *, spend_topic: str = kafka.SPEND_POSTED_TOPIC,
         delivery_topic: str = kafka.DELIVERY_CONTROL_TOPIC) -> Service:
    settings = settings or Settings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings, migrations=files("adledger_campaign") / "migrations", clock=clock)
    campaigns = Campaigns(clock, minimum_budget_micros=settings.minimum_budget_micros, topics=Topics())
    endpoints = CampaignApi(lambda: runtime.pool, lambda: runtime.relay, campaigns).endpoints()
    runtime.add_routes(*(route(endpoint) for endpoint in endpoints), openapi_route(openapi(endpoints)))
    for rejection in REJECTIONS:
        runtime.add_error_handler(rejection, answer_rejection)
    runtime.subscribe(*kafka.subscriptions(campaigns, spend_topic=spend_topic, delivery_topic=delivery_topic))
    deadlines = DueDeadlines(lambda: runtime.pool, lambda: runtime.relay, campaigns)
    runtime.add_periodic_job("campaign_deadlines", deadlines.run, settings.deadline_poll_interval_ms)

    async def ensure_platform_operator() -> None:
        async with unit_of_work(runtime.pool) as uow:
            await postgres.insert_user(uow.conn, "platform", "Platform operator", settings.platform_token, platform_operator=True, now=clock.now())

    runtime.add_startup_job(ensure_platform_operator)
    return Service(runtime, campaigns, deadlines)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


def openapi(endpoints: Any = None) -> dict[str, Any]:
    """The OpenAPI document, served at /openapi.json and checked in at schemas/openapi/campaign.json."""
    if endpoints is None:
        endpoints = CampaignApi(lambda: None, lambda: None, Campaigns(SystemClock())).endpoints()  # type: ignore[arg-type,return-value]
    return openapi_document(
        title=OPENAPI_TITLE,
        version="1",
        description="Campaigns (drawdown or prepaid), their budgets, pauses and ends (C1-C5), and ad-account budget caps "
        "(W9, W10). A prepaid campaign books its budget as wallet holds, an invoice covers a shortfall, an underdelivery "
        "is credited 48 hours after the end. Every command takes an Idempotency-Key header; every call a bearer token.",
        endpoints=endpoints,
    )


def write_openapi(directory: Path) -> Path:
    path = directory / "campaign.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(openapi(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    print(write_openapi(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas/openapi")))
