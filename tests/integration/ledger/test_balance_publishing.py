"""`balances.v1` never carries older figures under a newer version (issue 12's finding): the
owner's version row is locked before the balance is read, so two transactions that publish one
owner's balance are ordered, and the one with the higher version read after the other committed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from adledger_contracts.external import BalanceChanged
from adledger_ledger.domain import Account, TransferRequest, raise_first_error
from adledger_ledger.owners import owner_account_id, owner_accounts, system_account_id, system_accounts
from adledger_ledger.postgres import PostgresLedger
from adledger_ledger.publishing import publish_balances
from adledger_libs.outbox import UnitOfWork

from ..conftest import Stack
from .test_postgres_ledger import ledger_in_new_schema, service_connection

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
OWNER = "bc-racing"


class PausingLedger(PostgresLedger):
    """The real ledger, which stops after reading balances until the test lets it go on."""

    def __init__(self, schema: str) -> None:
        super().__init__(schema)
        self.read = asyncio.Event()
        self.go_on = asyncio.Event()

    async def balances(self, session: asyncpg.Connection, account_ids: Sequence[str]) -> dict[str, Account]:
        found = await super().balances(session, account_ids)
        self.read.set()
        await self.go_on.wait()
        return found


async def _pay(ledger: PostgresLedger, conn: asyncpg.Connection, amount_micros: int, transfer_id: str) -> None:
    request = TransferRequest(
        id=transfer_id, debit_account_id=system_account_id("world_payments", "USD"),
        credit_account_id=owner_account_id("business_center", OWNER, "cash"), amount_micros=amount_micros,
        currency="USD", code="payment_received",
    )
    raise_first_error(await ledger.create_transfers(conn, [request], NOW))


async def test_a_balance_published_while_money_moves_never_carries_older_figures_under_a_newer_version(stack: Stack) -> None:
    async with ledger_in_new_schema(stack.database_url) as plain:
        first = await service_connection(stack.database_url)
        second = await service_connection(stack.database_url)
        try:
            async with first.transaction():
                await plain.create_accounts(first, system_accounts("USD") + owner_accounts("business_center", OWNER, "USD"))
                await _pay(plain, first, 5, "pay-1")
            pausing = PausingLedger(plain.schema)
            slow = UnitOfWork(first)
            fast = UnitOfWork(second)

            published: list[BalanceChanged] = []

            async def publish_slowly() -> None:
                # Publishes the owner's balance without moving money (as a reader of the owner would).
                async with first.transaction():
                    published.extend(await publish_balances(slow, pausing, [("business_center", OWNER)], NOW))

            async def pay_and_publish() -> None:
                async with second.transaction():
                    await _pay(plain, second, 7, "pay-2")
                    published.extend(await publish_balances(fast, plain, [("business_center", OWNER)], NOW))

            slow_task = asyncio.ensure_future(publish_slowly())
            await asyncio.wait_for(pausing.read.wait(), 10)
            fast_task = asyncio.ensure_future(pay_and_publish())
            # The payment either completes (the reader took no lock) or waits on the reader's lock.
            await _done_or_waiting_on_a_lock(fast_task, stack, second)
            pausing.go_on.set()
            await asyncio.wait_for(asyncio.gather(slow_task, fast_task), 20)
        finally:
            await first.close()
            await second.close()
        events = sorted(published, key=lambda event: event.version)
        assert [event.version for event in events] == [1, 2]
        assert events[-1].real_micros == 12, "the newest version carries the newest figures"


async def _done_or_waiting_on_a_lock(task: asyncio.Future[None], stack: Stack, conn: asyncpg.Connection) -> None:
    pid = conn.get_server_pid()
    observer = await asyncpg.connect(stack.database_url)
    try:
        for _ in range(400):
            if task.done():
                return
            waiting = await observer.fetchval("select wait_event_type = 'Lock' from pg_stat_activity where pid = $1", pid)
            if waiting:
                return
            await asyncio.sleep(0.025)
        raise AssertionError("the payment neither finished nor waited on a lock")
    finally:
        await observer.close()
