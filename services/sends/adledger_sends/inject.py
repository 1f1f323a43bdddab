"""All wiring of the sends service, and the only module that names PostgreSQL. Tests pass their
own settings, clock and topics."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from adledger_ledger.postgres import PostgresLedger
from adledger_libs.clock import Clock
from adledger_libs.runtime import ServiceRuntime, clock_for
from adledger_libs.web import Commands, OpenApiDocument

from adledger_sends.adapters import http
from adledger_sends.adapters.postgres import PostgresSendsWork, transactions
from adledger_sends.config import Settings
from adledger_sends.core import Schedules, Sends, Topics

TITLE = "adledger sends"
DESCRIPTION = (
    "Teams, user balances that refresh or roll over on a schedule, and sends (eGifts and items) charged to the "
    "sender's balance or a funding source, with add-funds, integrations' approvals and final-cost adjustments "
    "(U1-U6, I6). Every call takes the platform's bearer token (a session token from the identity service, or an "
    "API key scoped to `sends`); every command an Idempotency-Key header."
)


@dataclass(frozen=True)
class Service:
    runtime: ServiceRuntime
    sends: Sends
    schedules: Schedules


def wire(settings: Settings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or Settings()
    clock = clock or clock_for(settings)
    runtime = ServiceRuntime(settings, migrations=files("adledger_sends") / "migrations", clock=clock)
    # The ledger's schema is migrated by its one owner, the wallet; this service only uses it.
    runtime.verify_callers()
    sends = Sends(clock, PostgresLedger(settings.ledger_schema),
                  Topics(events=settings.events_topic, invoicing_commands=settings.invoicing_commands_topic))
    commands = Commands(lambda: runtime.pool, lambda: runtime.relay, service=settings.service_name)
    runtime.add_router(http.router(sends, commands, PostgresSendsWork))
    runtime.describe_api(title=TITLE, description=DESCRIPTION, rejections=http.REJECTIONS,
                         public_paths=http.PUBLIC_PATHS)
    schedules = Schedules(transactions(lambda: runtime.pool, lambda: runtime.relay), sends)
    runtime.add_periodic_job("sends_schedules", schedules.run, settings.schedule_poll_interval_ms)
    return Service(runtime, sends, schedules)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


#: The OpenAPI document (no database needed);
#: `python -m adledger_sends.inject` writes schemas/openapi/sends.json.
DOCUMENT = OpenApiDocument("sends", lambda: build(Settings(profile="local")).http_app())
openapi = DOCUMENT.document
openapi_document = DOCUMENT.text
write_openapi = DOCUMENT.write


if __name__ == "__main__":
    import sys

    DOCUMENT.main(sys.argv)
