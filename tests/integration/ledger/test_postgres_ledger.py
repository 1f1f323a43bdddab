"""The PostgreSQL ledger against the real database (rules M1-M5).

Each test migrates the ledger into a schema of its own and drops it afterwards. The connections
keep another schema on their search_path, as a service's do, so the adapter's qualified names
are what finds the ledger's tables.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings

from adledger_ledger.audit import (
    CHECK_ACCOUNT_TOTALS,
    CHECK_CURRENCY_SUMS,
    CHECK_HOLD_RESOLUTIONS,
    CHECK_TRANSFER_CURRENCIES,
    audit_ledger,
)
from adledger_ledger.domain import (
    Account,
    IdempotencyConflictError,
    InsufficientFundsError,
    LedgerError,
    TransferRequest,
    raise_first_error,
)
from adledger_ledger.fake import InMemoryLedger
from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_libs.db import connect, migrate

from ...unit.ledger.scenario import START, ScenarioRunner, Step, check_balance_invariants, scenarios
from ..conftest import Stack, unique

pytestmark = pytest.mark.integration


@asynccontextmanager
async def ledger_in_new_schema(database_url: str) -> AsyncIterator[PostgresLedger]:
    schema = unique("ledger")
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
        yield PostgresLedger(schema=schema)
    finally:
        await conn.execute(f"drop schema if exists {schema} cascade")
        await conn.close()


async def service_connection(database_url: str) -> asyncpg.Connection:
    """A connection like a service's: its own schema first on the search_path, codecs set."""
    return await connect(database_url, "some_service", application_name="adledger-ledger-tests")


@pytest_asyncio.fixture
async def ledger(stack: Stack) -> AsyncIterator[PostgresLedger]:
    async with ledger_in_new_schema(stack.database_url) as created:
        yield created


@pytest_asyncio.fixture
async def conn(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    opened = await service_connection(stack.database_url)
    try:
        yield opened
    finally:
        await opened.close()


# ------------------------------------------------------------------------------------------
# Random scenarios: the invariants hold in PostgreSQL and its answers are the domain's
# ------------------------------------------------------------------------------------------


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=scenarios)
async def test_m3_m4_m5_random_operations_keep_every_invariant_in_postgres(stack: Stack, steps: list[Step]) -> None:
    """Any sequence of transfers, holds, posts, voids, expiries, repeats and linked chains keeps
    the sums at zero, guarded accounts within their limit, totals equal to the sum of stored
    transfers, each key applied once and each hold resolved once; and every answer equals the
    in-memory fake's, which is the pure domain's."""
    async with ledger_in_new_schema(stack.database_url) as ledger:
        conn = await service_connection(stack.database_url)
        try:

            @asynccontextmanager
            async def transaction() -> AsyncIterator[asyncpg.Connection]:
                async with conn.transaction():
                    yield conn

            in_postgres = ScenarioRunner(ledger, transaction)
            in_memory = ScenarioRunner(InMemoryLedger())
            await in_postgres.run(steps)
            await in_memory.run(steps)
            assert in_postgres.observations == in_memory.observations
            await _check_tables(conn, ledger.schema)
        finally:
            await conn.close()


async def _check_tables(conn: asyncpg.Connection, schema: str) -> None:
    """The same invariants, asked of the tables by the operator's audit (adledger_ledger.audit):
    the sums at zero, totals equal to the sum of the stored transfers, each hold resolved once and
    out of the expiry queue once resolved. (Expiry against the wall clock is not asked: the
    scenarios run on their own clock, in 2030.)"""
    found = await audit_ledger(conn, schema, now=START)
    checked = {CHECK_CURRENCY_SUMS, CHECK_TRANSFER_CURRENCIES, CHECK_ACCOUNT_TOTALS, CHECK_HOLD_RESOLUTIONS}
    assert [finding for finding in found.findings() if finding.check in checked] == []


# ------------------------------------------------------------------------------------------
# Concurrency
# ------------------------------------------------------------------------------------------

CONCURRENT_ACCOUNTS = (
    Account(id="world:payments:usd", currency="USD", code="world"),
    Account(id="bc:1:cash", currency="USD", code="cash", debits_must_not_exceed_credits=True),
    Account(id="bc:2:cash", currency="USD", code="cash", debits_must_not_exceed_credits=True),
    Account(id="bc:3:cash", currency="USD", code="cash", debits_must_not_exceed_credits=True),
    Account(id="platform:revenue:usd", currency="USD", code="revenue"),
)
WORKERS = 8
OPERATIONS_PER_WORKER = 200


def _shared_request(number: int) -> TransferRequest:
    """A request every worker may send: same id, same fields, so all but one must replay."""
    return TransferRequest(
        id=f"shared:{number}",
        debit_account_id="world:payments:usd",
        credit_account_id=f"bc:{number % 3 + 1}:cash",
        amount_micros=1_000 + number,
        currency="USD",
        code="top_up",
    )


async def _worker(database_url: str, ledger: PostgresLedger, worker: int) -> tuple[int, int]:
    """Random transfers, holds, posts, voids, shared ids and expiry sweeps, one transaction each.

    Answers (transfers applied here for the first time, holds expired here).
    """
    randomness = random.Random(worker)
    conn = await service_connection(database_url)
    applied = 0
    expired = 0
    my_holds: list[str] = []
    guarded = [account.id for account in CONCURRENT_ACCOUNTS if account.debits_must_not_exceed_credits]
    try:
        for operation in range(OPERATIONS_PER_WORKER):
            now = START + timedelta(seconds=operation)
            choice = randomness.random()
            requests: list[TransferRequest]
            if choice < 0.15:
                requests = [_shared_request(randomness.randrange(50))]
            elif choice < 0.30 and my_holds:
                pending_id = my_holds.pop(randomness.randrange(len(my_holds)))
                post = randomness.random() < 0.6
                requests = [
                    TransferRequest(
                        id=f"w{worker}:resolve:{operation}",
                        pending_id=pending_id,
                        amount_micros=randomness.choice([None, randomness.randint(1, 500)]) if post else None,
                        currency="USD",
                        code="spend" if post else "release",
                        post_pending=post,
                        void_pending=not post,
                    )
                ]
            elif choice < 0.35:
                async with conn.transaction():
                    expired += len(await ledger.expire_pending(conn, now + timedelta(seconds=30)))
                continue
            else:
                # A batch of one to three movements between guarded and unguarded accounts,
                # sometimes linked, sometimes holds with a short deadline.
                requests = []
                linked = randomness.random() < 0.2
                for member in range(randomness.randint(1, 3)):
                    debit_account_id, credit_account_id = randomness.sample(
                        [*guarded, "platform:revenue:usd", "world:payments:usd"], 2
                    )
                    pending = randomness.random() < 0.3
                    requests.append(
                        TransferRequest(
                            id=f"w{worker}:move:{operation}:{member}",
                            debit_account_id=debit_account_id,
                            credit_account_id=credit_account_id,
                            amount_micros=randomness.randint(1, 800),
                            currency="USD",
                            code="hold" if pending else "spend",
                            pending=pending,
                            expires_at=now + timedelta(seconds=randomness.randint(1, 60)) if pending else None,
                            linked=linked,
                        )
                    )
                requests[-1] = replace(requests[-1], linked=False)
            async with conn.transaction():
                results = await ledger.create_transfers(conn, requests, now)
            for request, result in zip(requests, results, strict=True):
                assert result.error is None or isinstance(result.error, LedgerError), result.error
                if result.ok and not result.replayed:
                    applied += 1
                    if request.pending:
                        my_holds.append(request.id)
    finally:
        await conn.close()
    return applied, expired


async def test_m3_m4_m5_parallel_writers_lose_no_update_and_keep_guards(
    stack: Stack, ledger: PostgresLedger, conn: asyncpg.Connection
) -> None:
    """8 connections, 200 operations each, on 5 shared accounts: no deadlock, no lost update
    (totals equal the sum of the stored transfers), sums zero, guarded accounts never negative
    counting holds, shared ids applied once, each hold resolved once."""
    async with conn.transaction():
        await ledger.create_accounts(conn, CONCURRENT_ACCOUNTS)
        seed = [
            TransferRequest(
                id=f"seed:{account.id}",
                debit_account_id="world:payments:usd",
                credit_account_id=account.id,
                amount_micros=20_000,
                currency="USD",
                code="top_up",
            )
            for account in CONCURRENT_ACCOUNTS
            if account.debits_must_not_exceed_credits
        ]
        raise_first_error(await ledger.create_transfers(conn, seed, START))

    outcomes = await asyncio.gather(*(_worker(stack.database_url, ledger, worker) for worker in range(WORKERS)))

    applied_by_workers = sum(applied for applied, _ in outcomes)
    schema = ledger.schema
    stored_count = await conn.fetchval(f"select count(*) from {schema}.transfers")
    assert stored_count == applied_by_workers + len(seed), "every transfer applied exactly once"
    shared = await conn.fetchval(f"select count(*) from {schema}.transfers where id like 'shared:%'")
    assert 0 < shared <= 50
    expired_count = await conn.fetchval(f"select count(*) from {schema}.pending_resolutions where kind = 'expired'")
    assert expired_count == sum(expired for _, expired in outcomes), "each hold expired once, by one sweep"

    all_ids = [row["id"] for row in await conn.fetch(f"select id from {schema}.transfers")]
    accounts = await ledger.balances(conn, [account.id for account in CONCURRENT_ACCOUNTS])
    transfers = await ledger.lookup_transfers(conn, all_ids)
    check_balance_invariants(accounts.values(), transfers.values())
    await _check_tables(conn, schema)


# ------------------------------------------------------------------------------------------
# Immutability, idempotent accounts, the transaction requirement, migrations
# ------------------------------------------------------------------------------------------


async def _funded_ledger(ledger: PostgresLedger, conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await ledger.create_accounts(conn, CONCURRENT_ACCOUNTS)
        raise_first_error(
            await ledger.create_transfers(
                conn,
                [
                    TransferRequest(
                        id="top-up",
                        debit_account_id="world:payments:usd",
                        credit_account_id="bc:1:cash",
                        amount_micros=1_000,
                        currency="USD",
                        code="top_up",
                        user_data={"invoice": "inv-1", "lines": [1, 2]},
                    ),
                    TransferRequest(
                        id="hold",
                        debit_account_id="bc:1:cash",
                        credit_account_id="platform:revenue:usd",
                        amount_micros=400,
                        currency="USD",
                        code="hold",
                        pending=True,
                        expires_at=START + timedelta(hours=48),
                    ),
                    TransferRequest(id="post", pending_id="hold", currency="USD", code="spend", post_pending=True),
                ],
                START,
            )
        )


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("update {schema}.transfers set amount_micros = 1 where id = 'top-up'", "transfers"),
        ("delete from {schema}.transfers where id = 'post'", "transfers"),
        ("truncate {schema}.transfers cascade", "transfers"),
        ("update {schema}.pending_resolutions set kind = 'voided'", "pending_resolutions"),
        ("delete from {schema}.pending_resolutions", "pending_resolutions"),
    ],
)
async def test_m3_transfers_and_resolutions_are_immutable(
    ledger: PostgresLedger, conn: asyncpg.Connection, statement: str, table: str
) -> None:
    await _funded_ledger(ledger, conn)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match=f"{table}.*immutable"):
        await conn.execute(statement.format(schema=ledger.schema))
    stored = await ledger.lookup_transfers(conn, ["top-up", "hold", "post"])
    assert stored["top-up"].amount_micros == 1_000 and dict(stored["top-up"].user_data) == {
        "invoice": "inv-1",
        "lines": [1, 2],
    }
    assert stored["hold"].resolution is not None and stored["hold"].resolution.resolving_transfer_id == "post"


async def test_m3_the_database_refuses_a_guarded_account_going_negative_even_by_hand(
    ledger: PostgresLedger, conn: asyncpg.Connection
) -> None:
    await _funded_ledger(ledger, conn)
    with pytest.raises(asyncpg.CheckViolationError, match="accounts_debits_within_credits"):
        await conn.execute(f"update {ledger.schema}.accounts set debits_posted_micros = 5000 where id = 'bc:1:cash'")


async def test_m4_m5_a_post_and_a_repeat_in_postgres_answer_like_the_domain(
    ledger: PostgresLedger, conn: asyncpg.Connection
) -> None:
    await _funded_ledger(ledger, conn)
    request = TransferRequest(
        id="spend:2",
        debit_account_id="bc:1:cash",
        credit_account_id="platform:revenue:usd",
        amount_micros=601,
        currency="USD",
        code="spend",
    )
    async with conn.transaction():
        refused = (await ledger.create_transfers(conn, [request], START))[0]
    assert isinstance(refused.error, InsufficientFundsError) and refused.error.available_micros == 600
    cheaper = replace(request, amount_micros=600)
    async with conn.transaction():
        first = (await ledger.create_transfers(conn, [cheaper], START))[0]
    async with conn.transaction():
        again = (await ledger.create_transfers(conn, [cheaper], START + timedelta(days=1)))[0]
        conflict = (await ledger.create_transfers(conn, [request], START + timedelta(days=1)))[0]
    assert first.ok and again.replayed and again.transfer == first.transfer
    assert isinstance(conflict.error, IdempotencyConflictError)
    cash = (await ledger.balances(conn, ["bc:1:cash"]))["bc:1:cash"]
    assert (cash.credits_posted_micros, cash.debits_posted_micros, cash.debits_pending_micros) == (1_000, 1_000, 0)


async def test_m5_accounts_open_idempotently_in_postgres(ledger: PostgresLedger, conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        first = await ledger.create_accounts(conn, CONCURRENT_ACCOUNTS)
    async with conn.transaction():
        again = await ledger.create_accounts(conn, CONCURRENT_ACCOUNTS)
    assert first == again == list(CONCURRENT_ACCOUNTS)
    with pytest.raises(IdempotencyConflictError):
        async with conn.transaction():
            await ledger.create_accounts(conn, [Account(id="bc:1:cash", currency="EUR", code="cash")])


async def test_the_ledger_refuses_to_run_outside_a_transaction(
    ledger: PostgresLedger, conn: asyncpg.Connection
) -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        await ledger.create_transfers(conn, [_shared_request(1)], START)


async def test_ledger_migrations_apply_once_into_their_schema(stack: Stack) -> None:
    schema = unique("ledger")
    conn = await asyncpg.connect(stack.database_url)
    try:
        applied = await migrate(conn, schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
        assert applied[0] == "adledger_ledger/0001_ledger.sql"
        rows = await conn.fetch("select table_name from information_schema.tables where table_schema = $1", schema)
        tables = {row["table_name"] for row in rows}
        assert {"accounts", "transfers", "pending_resolutions", "pending_expiries"} <= tables
        assert await migrate(conn, schema, [("adledger_ledger", LEDGER_MIGRATIONS)]) == []
    finally:
        await conn.execute(f"drop schema if exists {schema} cascade")
        await conn.close()
