"""All wiring of the wallet service. Tests pass their own settings and clock."""

from __future__ import annotations


from dataclasses import dataclass
from importlib.resources import files

from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_libs.clock import Clock
from adledger_libs.db import connect
from adledger_libs.outbox import unit_of_work
from adledger_libs.runtime import ServiceRuntime, clock_for
from adledger_libs.web import Commands, OpenApiDocument
from adledger_wallet.adapters import http, kafka
from adledger_wallet.adapters.postgres import PostgresWalletStore, move_legacy_payouts
from adledger_wallet.config import Settings
from adledger_wallet.core import Wallet
from adledger_wallet.day_closes import DayCloses
from adledger_wallet.prepayment import PrepaymentThresholds

TITLE = "adledger wallet"
DESCRIPTION = (
    "Business Centers, ad accounts, Automatic Balance Allocation, allocations and balances. Every call takes a "
    "bearer token of the platform's one identity (a session token from the identity service, or an API key); "
    "every command an Idempotency-Key header."
)


@dataclass(frozen=True)
class Service:
    runtime: ServiceRuntime
    wallet: Wallet
    day_closes: DayCloses


def wire(settings: Settings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or Settings()
    clock = clock or clock_for(settings)
    runtime = ServiceRuntime(settings, migrations=files("adledger_wallet") / "migrations", clock=clock)
    # The wallet is the one owner of the shared ledger's migrations (issue 13).
    runtime.add_shared_schema(settings.ledger_schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
    ledger = PostgresLedger(settings.ledger_schema)
    store = PostgresWalletStore.of
    wallet = Wallet(ledger, clock, store, events_topic=settings.events_topic, balances_topic=settings.balances_topic)
    runtime.verify_callers()
    commands = Commands(lambda: runtime.pool, lambda: runtime.relay, service=settings.service_name)
    runtime.add_router(http.router(wallet, commands))
    runtime.describe_api(title=TITLE, description=DESCRIPTION, rejections=http.REJECTIONS)
    thresholds = PrepaymentThresholds(ledger, store, clock, settings.events_topic)
    runtime.subscribe(*kafka.subscriptions(
        wallet, settings.consumer_group, topic=settings.invoicing_events_topic, thresholds=thresholds,
        balances_topic=settings.balances_topic, commands_topic=settings.commands_topic,
        campaign_events_topic=settings.campaign_events_topic,
    ))
    day_closes = DayCloses(lambda: runtime.pool, ledger, store, clock)
    runtime.add_periodic_job("day_closes", day_closes.run_due_closes, settings.day_close_poll_interval_ms)

    async def expire_holds() -> None:
        async with unit_of_work(runtime.pool, runtime.relay) as uow:
            await wallet.expire_holds(uow)

    runtime.add_periodic_job(
        "hold_expiry", expire_holds, settings.hold_expiry_poll_interval_ms, next_due=lambda: ledger.next_expiry(runtime.pool)
    )

    async def move_payouts_out_of_the_ledger() -> None:
        conn = await connect(settings.database_url, settings.schema, application_name="adledger-wallet-payouts")
        try:
            await move_legacy_payouts(conn, settings.ledger_schema)
        finally:
            await conn.close()

    runtime.add_startup_job(move_payouts_out_of_the_ledger)
    return Service(runtime, wallet, day_closes)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


#: The OpenAPI document (no database needed);
#: `python -m adledger_wallet.inject` writes schemas/openapi/wallet.json.
DOCUMENT = OpenApiDocument("wallet", lambda: build(Settings(profile="local")).http_app())
openapi = DOCUMENT.document
openapi_document = DOCUMENT.text
write_openapi = DOCUMENT.write


if __name__ == "__main__":
    import sys

    DOCUMENT.main(sys.argv)
