"""All wiring of the order_escrow service: the only module that names PostgreSQL and Kafka's
adapters. Tests pass their own settings and clock, and may replace the core."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from adledger_libs.clock import Clock
from adledger_libs.runtime import ServiceRuntime, clock_for
from adledger_libs.web import Commands, OpenApiDocument

from adledger_order_escrow.adapters import http, kafka
from adledger_order_escrow.adapters.postgres import PostgresUnitOfWork, next_deadline, units_of_work
from adledger_order_escrow.config import Settings
from adledger_order_escrow.core import DueDeadlines, OrderEscrow
from adledger_order_escrow.ports.inbound import OrderEscrowPort

TITLE = "adledger order escrow"
DESCRIPTION = (
    "Orders from channels held in escrow (O1-O6): accept or decline within 48 hours, Ready, Complete, dispute "
    "within 48 hours of Complete, release, refund or split. Callers are the platform's one identity (a session "
    "token from the identity service, or an API key with the `orders` scope). Parties: the buyer (placed the "
    "order, holding `place_order` in the paying owner's Business Center, W9), the seller (answers for the "
    "channel), platform operators (register channels, resolve disputes); anyone else is told an order does "
    "not exist. Every command takes an Idempotency-Key header."
)


@dataclass(frozen=True)
class Service:
    """The runtime, and the parts tests drive directly (the deadline job, T1)."""

    runtime: ServiceRuntime
    escrow: OrderEscrowPort
    deadlines: DueDeadlines


def wire(
    settings: Settings | None = None, clock: Clock | None = None, escrow: OrderEscrowPort | None = None
) -> Service:
    """`escrow` replaces the core (a test's double); by default it is `OrderEscrow` on `clock`."""
    settings = settings or Settings()
    clock = clock or clock_for(settings)
    runtime = ServiceRuntime(settings, migrations=files("adledger_order_escrow") / "migrations", clock=clock)
    core = escrow or OrderEscrow(
        clock, commands_topic=settings.wallet_commands_topic, orders_topic=settings.orders_events_topic
    )
    runtime.verify_callers()
    commands = Commands(lambda: runtime.pool, lambda: runtime.relay, service=settings.service_name)
    runtime.add_router(http.router(core, commands, PostgresUnitOfWork))
    runtime.describe_api(
        title=TITLE, description=DESCRIPTION, rejections=http.REJECTIONS, public_paths=http.PUBLIC_PATHS
    )
    runtime.subscribe(*kafka.subscriptions(core, PostgresUnitOfWork, wallet_events_topic=settings.wallet_events_topic))
    deadlines = DueDeadlines(units_of_work(lambda: runtime.pool, lambda: runtime.relay), core)
    runtime.add_periodic_job(
        "order_deadlines", deadlines.run, settings.deadline_poll_interval_ms, next_due=lambda: next_deadline(runtime.pool)
    )
    return Service(runtime, core, deadlines)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


#: The OpenAPI document (no database needed);
#: `python -m adledger_order_escrow.inject` writes schemas/openapi/order_escrow.json.
DOCUMENT = OpenApiDocument("order_escrow", lambda: build(Settings(profile="local")).http_app())
openapi = DOCUMENT.document
openapi_document = DOCUMENT.text
write_openapi = DOCUMENT.write


if __name__ == "__main__":
    import sys

    DOCUMENT.main(sys.argv)
