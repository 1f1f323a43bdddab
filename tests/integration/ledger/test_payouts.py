"""The payout gate (W14) against the real PostgreSQL ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from adledger_ledger.domain import TransferRequest, balance, raise_first_error
from adledger_ledger.owners import owner_account_id, owner_accounts, system_account_id, system_accounts
from adledger_ledger.payouts import Payout, release_ready_payouts, request_payout
from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_libs.db import migrate

from ..conftest import Stack, unique

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


@pytest_asyncio.fixture
async def ledger_conn(stack: Stack) -> AsyncIterator[tuple[asyncpg.Connection, PostgresLedger]]:
    schema = unique("t_ledger")
    conn = await asyncpg.connect(stack.database_url)
    try:
        await migrate(conn, schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
        ledger = PostgresLedger(schema)
        async with conn.transaction():
            await ledger.create_accounts(conn, system_accounts("USD") + owner_accounts("business_center", "payer", "USD"))
        yield conn, ledger
    finally:
        await conn.execute(f"drop schema if exists {schema} cascade")
        await conn.close()


async def _pay_in(conn: asyncpg.Connection, ledger: PostgresLedger, transfer_id: str, amount_micros: int) -> None:
    async with conn.transaction():
        request = TransferRequest(
            id=transfer_id,
            debit_account_id=system_account_id("world_payments", "USD"),
            credit_account_id=owner_account_id("business_center", "payer", "cash"),
            amount_micros=amount_micros,
            currency="USD",
            code="payment_received",
        )
        raise_first_error(await ledger.create_transfers(conn, [request], NOW))


async def test_w14_a_payout_waits_while_the_real_balance_is_short_and_goes_out_once_when_funds_arrive(
    ledger_conn: tuple[asyncpg.Connection, PostgresLedger],
) -> None:
    conn, ledger = ledger_conn
    seller = system_account_id("escrow_orders", "USD")
    await _pay_in(conn, ledger, "in-1", 5_000_000)
    big = Payout("commission-1", "business_center", "payer", seller, 8_000_000, "USD", "publisher_commission")
    small = Payout("commission-2", "business_center", "payer", seller, 1_000_000, "USD", "publisher_commission")
    async with conn.transaction():
        assert await request_payout(conn, ledger, big, NOW) is False
    async with conn.transaction():
        # The small one could be paid, but it does not jump the queue behind the big one.
        assert await request_payout(conn, ledger, small, NOW + timedelta(seconds=1)) is False
    cash = owner_account_id("business_center", "payer", "cash")
    assert balance((await ledger.balances(conn, [cash]))[cash]) == 5_000_000

    await _pay_in(conn, ledger, "in-2", 10_000_000)
    async with conn.transaction():
        assert await release_ready_payouts(conn, ledger, "business_center", "payer", NOW) == ["commission-1", "commission-2"]
    async with conn.transaction():
        assert await release_ready_payouts(conn, ledger, "business_center", "payer", NOW) == []
        assert await request_payout(conn, ledger, big, NOW) is True, "a repeated request is answered, not paid again"
    accounts = await ledger.balances(conn, [cash, seller])
    assert balance(accounts[cash]) == 6_000_000
    assert balance(accounts[seller]) == 9_000_000
