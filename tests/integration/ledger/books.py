"""A small, healthy set of books for the audit's tests, made through the real ledger: a private
ledger schema with owners in two currencies, payments, spend, credit line and vouchers, holds
posted in part, voided, left open and expired by the sweep, an overspend; every owner's balance
published on a private balances topic through a service schema's outbox and its relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
from adledger_contracts.topics import topic
from adledger_ledger.domain import TransferRequest, raise_first_error
from adledger_ledger.owners import OwnerKind, owner_account_id, owner_accounts, system_account_id, system_accounts
from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_ledger.publishing import publish_balances
from adledger_libs.db import LIBRARY_MIGRATIONS, create_pool, migrate
from adledger_libs.kafka import ensure_topics, make_producer
from adledger_libs.outbox import OutboxRelay, unit_of_work
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ..conftest import unique

USD = 1_000_000


@dataclass(frozen=True)
class Books:
    ledger_schema: str
    service_schema: str
    balances_topic: str
    business_center: str
    ad_account: str
    euro_account: str
    open_hold: str
    now: datetime

    @property
    def owners(self) -> list[tuple[OwnerKind, str]]:
        return [
            ("business_center", self.business_center),
            ("ad_account", self.ad_account),
            ("ad_account", self.euro_account),
        ]

    def audit_arguments(self, *extra: str) -> list[str]:
        """`adledger ledger audit` on these books only: their ledger, topic and outbox."""
        return [
            "ledger",
            "audit",
            "--ledger-schema",
            self.ledger_schema,
            "--balances-topic",
            self.balances_topic,
            "--outbox-schema",
            self.service_schema,
            "--json",
            *extra,
        ]


def _transfer(
    transfer_id: str, debit: str, credit: str, amount_micros: int, currency: str = "USD", **flags: object
) -> TransferRequest:
    return TransferRequest(
        id=transfer_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount_micros=amount_micros,
        currency=currency,
        code="test",
        **flags,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def healthy_books(database_url: str, bootstrap_servers: str) -> AsyncIterator[Books]:
    ledger_schema, service_schema = unique("t_audit_ledger"), unique("t_audit_service")
    balances_topic = unique("balances.v1")
    await ensure_topics(bootstrap_servers, [replace(topic("balances.v1"), name=balances_topic, partitions=3)])
    conn = await asyncpg.connect(database_url)
    pool: asyncpg.Pool | None = None
    try:
        await migrate(conn, ledger_schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
        await migrate(conn, service_schema, [("adledger_libs", LIBRARY_MIGRATIONS)])
        ledger = PostgresLedger(ledger_schema)
        now = datetime.now(UTC)
        books = Books(
            ledger_schema,
            service_schema,
            balances_topic,
            unique("bc"),
            unique("acc"),
            unique("acc_eur"),
            unique("hold"),
            now,
        )
        bc_cash = owner_account_id("business_center", books.business_center, "cash")
        ad_cash = owner_account_id("ad_account", books.ad_account, "cash")
        eu_cash = owner_account_id("ad_account", books.euro_account, "cash")

        def system(name: str, currency: str = "USD") -> str:
            return system_account_id(name, currency)

        async with conn.transaction():
            for kind, owner in books.owners:
                await ledger.register_owner(conn, owner, kind)
            await ledger.create_accounts(
                conn,
                system_accounts("USD")
                + system_accounts("EUR")
                + owner_accounts("business_center", books.business_center, "USD")
                + owner_accounts("ad_account", books.ad_account, "USD")
                + owner_accounts("ad_account", books.euro_account, "EUR"),
            )
        # A hold made two hours ago that expired an hour ago, released by the ledger's own sweep.
        earlier = now - timedelta(hours=2)
        async with conn.transaction():
            raise_first_error(
                await ledger.create_transfers(
                    conn,
                    [
                        _transfer("pay-bc-early", system("world_payments"), bc_cash, 100 * USD),
                        _transfer(
                            "hold-expired",
                            bc_cash,
                            system("platform_revenue"),
                            9 * USD,
                            pending=True,
                            expires_at=now - timedelta(hours=1),
                        ),
                    ],
                    earlier,
                )
            )
        async with conn.transaction():
            assert len(await ledger.expire_pending(conn, now)) == 1
        async with conn.transaction():
            raise_first_error(
                await ledger.create_transfers(
                    conn,
                    [
                        _transfer("pay-ad", system("world_payments"), ad_cash, 50 * USD),
                        _transfer("pay-eu", system("world_payments", "EUR"), eu_cash, 30 * USD, currency="EUR"),
                        _transfer("spend-ad", ad_cash, system("platform_revenue"), 5 * USD),
                        _transfer(
                            "credit-line",
                            system("platform_credit"),
                            owner_account_id("business_center", books.business_center, "credit_line"),
                            20 * USD,
                        ),
                        _transfer(
                            "vouchers",
                            system("platform_vouchers"),
                            owner_account_id("ad_account", books.ad_account, "vouchers"),
                            3 * USD,
                        ),
                        _transfer(
                            "overspend",
                            owner_account_id("ad_account", books.ad_account, "overspend"),
                            system("platform_revenue"),
                            2 * USD,
                        ),
                        _transfer(
                            "hold-posted",
                            bc_cash,
                            system("escrow_orders"),
                            10 * USD,
                            pending=True,
                            expires_at=now + timedelta(days=1),
                        ),
                        _transfer("hold-voided", ad_cash, system("platform_revenue"), 4 * USD, pending=True),
                        _transfer(
                            books.open_hold,
                            bc_cash,
                            system("platform_revenue"),
                            7 * USD,
                            pending=True,
                            expires_at=now + timedelta(days=1),
                        ),
                    ],
                    now,
                )
            )
        async with conn.transaction():
            raise_first_error(
                await ledger.create_transfers(
                    conn,
                    [
                        TransferRequest(
                            id="post-part",
                            pending_id="hold-posted",
                            amount_micros=6 * USD,
                            currency="USD",
                            code="test",
                            post_pending=True,
                        ),
                        TransferRequest(
                            id="void", pending_id="hold-voided", currency="USD", code="test", void_pending=True
                        ),
                    ],
                    now,
                )
            )
        pool = await create_pool(database_url, service_schema, application_name="adledger-audit-tests", max_size=2)
        async with unit_of_work(pool) as uow:
            await publish_balances(uow, ledger, books.owners, now, topic=balances_topic)
        producer = make_producer(bootstrap_servers, "adledger-audit-tests")
        await producer.start()
        try:
            assert await OutboxRelay(pool, producer, schema=service_schema).publish_pending() == 3
        finally:
            await producer.stop()
        yield books
    finally:
        if pool is not None:
            await pool.close()
        for schema in (ledger_schema, service_schema):
            await conn.execute(f"drop schema if exists {schema} cascade")
        await conn.close()
        # The topic goes too, so runs do not pile topics up on the shared broker.
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
        try:
            await admin.start()
            await admin.delete_topics([balances_topic])
        except KafkaError:
            pass
        finally:
            await admin.close()
