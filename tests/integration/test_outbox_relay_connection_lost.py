"""The outbox relay when PostgreSQL ends its listening connection (a database restart, an
administrator): stopping the relay must end with the cause (here the cancellation), not with an
error from unlistening on a connection that is already gone, which used to replace it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from adledger_libs.kafka import make_producer
from adledger_libs.outbox import OutboxRelay

from .conftest import Stack

pytestmark = pytest.mark.integration


async def test_a_relay_whose_listening_connection_was_ended_stops_with_its_cancellation(
    stack: Stack, pool: asyncpg.Pool, schema: str
) -> None:
    producer = make_producer(stack.kafka_bootstrap_servers, "tests")
    await producer.start()
    try:
        relay = OutboxRelay(pool, producer, schema=schema, poll_interval_s=0.1)
        running = asyncio.ensure_future(relay.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while relay._listener is None:
            assert loop.time() < deadline, "the relay never started listening"
            await asyncio.sleep(0.01)
        backend = relay._listener.get_server_pid()
        admin = await asyncpg.connect(stack.database_url)
        try:
            assert await admin.fetchval("select pg_terminate_backend($1)", backend)
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
        assert not running.done(), "the relay carries on polling without its listener"
        running.cancel()
        outcome = (await asyncio.gather(running, return_exceptions=True))[0]
        assert isinstance(outcome, asyncio.CancelledError), repr(outcome)
    finally:
        await producer.stop()
