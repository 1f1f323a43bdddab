"""All wiring of the order_escrow service. Tests pass their own settings and clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from adledger_libs.api import openapi_document, openapi_route, route
from adledger_libs.clock import Clock, SystemClock
from adledger_libs.outbox import unit_of_work
from adledger_libs.runtime import ServiceRuntime
from adledger_order_escrow.adapters import kafka, postgres
from adledger_order_escrow.adapters.http import REJECTIONS, OrderEscrowApi, answer_rejection
from adledger_order_escrow.config import Settings
from adledger_order_escrow.core import DueDeadlines, OrderEscrow

OPENAPI_TITLE = "adledger order escrow"


@dataclass(frozen=True)
class Service:
    """The runtime, and the parts tests drive directly (the deadline job, T1)."""

    runtime: ServiceRuntime
    escrow: OrderEscrow
    deadlines: DueDeadlines


def wire(settings: Settings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or Settings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings, migrations=files("adledger_order_escrow") / "migrations", clock=clock)
    escrow = OrderEscrow(clock)
    endpoints = OrderEscrowApi(lambda: runtime.pool, lambda: runtime.relay, escrow).endpoints()
    runtime.add_routes(*(route(endpoint) for endpoint in endpoints), openapi_route(openapi(endpoints)))
    for rejection in REJECTIONS:
        runtime.add_error_handler(rejection, answer_rejection)
    runtime.subscribe(*kafka.subscriptions(escrow))
    deadlines = DueDeadlines(lambda: runtime.pool, lambda: runtime.relay, escrow)
    runtime.add_periodic_job("order_deadlines", deadlines.run, settings.deadline_poll_interval_ms)

    async def ensure_platform_operator() -> None:
        async with unit_of_work(runtime.pool) as uow:
            await postgres.insert_user(
                uow.conn, "platform", "Platform operator", settings.platform_token, admin=True, buyer_owner_ids=[], now=clock.now()
            )

    runtime.add_startup_job(ensure_platform_operator)
    return Service(runtime, escrow, deadlines)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


def openapi(endpoints: Any = None) -> dict[str, Any]:
    """The OpenAPI document, served at /openapi.json and checked in at schemas/openapi/order_escrow.json."""
    if endpoints is None:
        endpoints = OrderEscrowApi(lambda: None, lambda: None, OrderEscrow(SystemClock())).endpoints()  # type: ignore[arg-type,return-value]
    return openapi_document(
        title=OPENAPI_TITLE,
        version="1",
        description="Orders from channels held in escrow (O1-O6): accept or decline within 48 hours, Ready, Complete, "
        "dispute within 48 hours of Complete, release, refund or split. Roles: buyer (placed the order), seller "
        "(answers for the channel), admin. Every command takes an Idempotency-Key header; every call a bearer token.",
        endpoints=endpoints,
    )


def write_openapi(directory: Path) -> Path:
    path = directory / "order_escrow.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(openapi(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    print(write_openapi(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas/openapi")))
