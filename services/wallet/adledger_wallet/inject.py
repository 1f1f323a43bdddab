"""All wiring of the wallet service. Tests pass their own settings and clock."""

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_libs.api import openapi_document, openapi_route, route
from adledger_libs.clock import Clock, SystemClock
from adledger_libs.outbox import unit_of_work
from adledger_libs.runtime import ServiceRuntime
from adledger_wallet.adapters import kafka, postgres
from adledger_wallet.adapters.http import REJECTIONS, WalletApi, answer_rejection
from adledger_wallet.config import Settings
from adledger_wallet.core import WALLET_EVENTS_TOPIC, Wallet
from adledger_wallet.day_closes import DayCloses
from adledger_wallet.prepayment import PrepaymentThresholds

OPENAPI_TITLE = "adledger wallet"


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings, migrations=files("adledger_wallet") / "migrations", clock=clock)
    runtime.add_shared_schema(settings.ledger_schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
    wallet = Wallet(PostgresLedger(settings.ledger_schema), clock)
    api = WalletApi(lambda: runtime.pool, lambda: runtime.relay, wallet)
    endpoints = api.endpoints()
    runtime.add_routes(*(route(endpoint) for endpoint in endpoints), openapi_route(openapi(endpoints)))
    for rejection in REJECTIONS:
        runtime.add_error_handler(rejection, answer_rejection)
    thresholds = PrepaymentThresholds(settings.ledger_schema, clock, WALLET_EVENTS_TOPIC)
    runtime.subscribe(*kafka.subscriptions(wallet, settings.consumer_group, thresholds=thresholds))
    day_closes = DayCloses(lambda: runtime.pool, settings.ledger_schema, clock)
    runtime.add_periodic_job("day_closes", day_closes.run_due_closes, settings.day_close_poll_interval_ms)

    async def expire_holds() -> None:
        async with unit_of_work(runtime.pool, runtime.relay) as uow:
            await wallet.expire_holds(uow)

    runtime.add_periodic_job("hold_expiry", expire_holds, settings.hold_expiry_poll_interval_ms)

    async def ensure_platform_operator() -> None:
        async with unit_of_work(runtime.pool) as uow:
            await postgres.insert_user(
                uow.conn, "platform", "Platform operator", settings.platform_token, platform_operator=True, now=clock.now()
            )

    runtime.add_startup_job(ensure_platform_operator)
    return runtime


def openapi(endpoints: Any = None) -> dict[str, Any]:
    """The OpenAPI document, served at /openapi.json and checked in at schemas/openapi/wallet.json."""
    if endpoints is None:
        endpoints = WalletApi(lambda: None, lambda: None, Wallet(PostgresLedger(), SystemClock())).endpoints()  # type: ignore[arg-type,return-value]
    return openapi_document(
        title=OPENAPI_TITLE,
        version="1",
        description="Business Centers, ad accounts, Automatic Balance Allocation, allocations and balances. "
        "Every command takes an Idempotency-Key header; every call a bearer token.",
        endpoints=endpoints,
    )


def write_openapi(directory: Path) -> Path:
    path = directory / "wallet.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(openapi(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    print(write_openapi(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas/openapi")))
