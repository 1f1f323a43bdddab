"""The sandbox clock's coordinator on the real PostgreSQL (issue 17): hops at every reported due time and
UTC midnight, a service that does not catch up ends the advance with a clear error (the time stays at that
hop, durable), one advance at a time, never backwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from adledger_libs import sandbox_clock as sandbox

from ..conftest import Stack, unique

pytestmark = pytest.mark.integration
START = datetime(2030, 3, 10, 6, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def clock_pool(stack: Stack) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    schema = unique("sbx_clock")
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await sandbox.ensure_schema(conn, schema)
            await sandbox.read_time(conn, schema, anchor=START)
        yield pool, schema
    finally:
        await pool.execute(f"drop schema if exists {schema} cascade")
        await pool.close()


async def _follow(pool: asyncpg.Pool, schema: str, service: str, next_due: list[datetime], seen: list[datetime],
                  stop: asyncio.Event) -> None:
    """A service that catches up with every move at once and reports the next of its due times."""
    clock = sandbox.SandboxClock(schema)
    await clock.attach(pool)
    while not stop.is_set():
        await clock.refresh(pool)
        now = clock.now()
        if not seen or seen[-1] != now:
            seen.append(now)
        await clock.report(pool, service, now, min((due for due in next_due if due > now), default=None))
        await asyncio.sleep(0.01)


async def test_t1_the_advance_stops_at_each_due_time_and_each_utc_midnight(clock_pool: tuple[asyncpg.Pool, str]) -> None:
    pool, schema = clock_pool
    due = [START + timedelta(hours=30), START + timedelta(hours=30, minutes=5)]
    seen: list[datetime] = []
    stop = asyncio.Event()
    follower = asyncio.ensure_future(_follow(pool, schema, "escrow", due, seen, stop))
    while not await sandbox.services_reached(pool, schema):  # registered: from now on every advance waits for it
        await asyncio.sleep(0.01)
    try:
        now, hops = await sandbox.advance_to(pool, schema, START + timedelta(hours=48), hop_timeout_s=10)
    finally:
        stop.set()
        await follower
    assert now == START + timedelta(hours=48)
    midnight = datetime(2030, 3, 11, tzinfo=UTC)
    assert seen == [START, midnight, *due, midnight + timedelta(days=1), now], seen
    assert hops == 5


async def test_t1_a_service_that_does_not_catch_up_ends_the_advance_with_its_name(clock_pool: tuple[asyncpg.Pool, str]) -> None:
    pool, schema = clock_pool
    clock = sandbox.SandboxClock(schema)
    await clock.attach(pool)
    await clock.report(pool, "wallet", START, None)  # reported once, then stopped
    with pytest.raises(sandbox.ServicesBehindError, match="wallet did not catch up") as raised:
        await sandbox.advance_to(pool, schema, START + timedelta(hours=2), hop_timeout_s=0.5)
    assert raised.value.behind == ["wallet"] and raised.value.now == START + timedelta(hours=2)
    assert await sandbox.read_time(pool, schema) == START + timedelta(hours=2), "the hop made is kept"


async def test_t1_backwards_too_far_and_two_at_once_are_refused(clock_pool: tuple[asyncpg.Pool, str]) -> None:
    pool, schema = clock_pool
    with pytest.raises(sandbox.ClockBackwardsError):
        await sandbox.advance_to(pool, schema, START - timedelta(seconds=1))
    with pytest.raises(sandbox.AdvanceTooLargeError):
        await sandbox.advance_to(pool, schema, START + sandbox.MAXIMUM_ADVANCE + timedelta(days=1))
    async with pool.acquire() as conn:
        await conn.execute("select pg_advisory_lock(hashtext($1))", f"adledger.sandbox_clock.advance.{schema}")
        try:
            with pytest.raises(sandbox.AdvanceInProgressError):
                await sandbox.advance_to(pool, schema, START + timedelta(hours=1))
        finally:
            await conn.execute("select pg_advisory_unlock(hashtext($1))", f"adledger.sandbox_clock.advance.{schema}")
    assert await sandbox.read_time(pool, schema) == START
    now, hops = await sandbox.advance_to(pool, schema, START)
    assert (now, hops) == (START, 0), "to the time it is: nothing moves"


@pytest.mark.parametrize("service", ["identity", "order_escrow"])
async def test_t1_a_service_in_production_refuses_to_start_on_the_sandbox_clock(service: str, stack: Stack) -> None:
    import os
    import subprocess
    import sys

    from ..waits import free_port

    environment = {**os.environ, "ADLEDGER_PROFILE": "production", "ADLEDGER_CLOCK": "sandbox",
                   "ADLEDGER_HTTP_PORT": str(free_port()), "ADLEDGER_DATABASE_SCHEMA": unique("never")}
    completed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", f"adledger_{service}"], env=environment, capture_output=True, text=True,
        timeout=120,
    )
    assert completed.returncode != 0
    assert "ADLEDGER_CLOCK=sandbox" in completed.stdout + completed.stderr
