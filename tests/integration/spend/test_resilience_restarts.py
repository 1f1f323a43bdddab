"""Rule S1 across a Kafka restart and a PostgreSQL restart, on a PRIVATE stack (its own broker and
database, started by deploy/local/stack with other ports; the shared stack is never restarted).

The spend consumer runs as a process while an ad server keeps producing spend; the broker or the
database is restarted mid-stream. What the service does is part of the proof:
- Kafka restarted: the service rides it out with no manual action (its consumer, producer and
  relay reconnect); every balance ends exact.
- PostgreSQL restarted: the batch in flight fails with the connection, the transaction is rolled
  back, and the service exits non-zero (a failed task is a bug, decisions "Foundation"); the test
  restarts it as an orchestrator would, and it resumes from the stored positions. Every balance
  ends exact; the exits are recorded and must be non-zero, never a silent hang.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from adledger_contracts.external import SpendReported
from aiokafka.errors import KafkaError

from .harness import Plan, Process, SpendWorld, fund, make_plan, make_spend, until
from .private_stack import PrivateStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private_stack() -> Iterator[PrivateStack]:
    created = PrivateStack()
    try:
        created.start()  # raises with the stack's output when it cannot start: fails, never skips
        yield created
    finally:
        created.destroy()


@pytest_asyncio.fixture
async def world(private_stack: PrivateStack, tmp_path: Path) -> AsyncIterator[SpendWorld]:
    created = SpendWorld(private_stack.bootstrap, private_stack.database_url, tmp_path)
    try:
        yield created
    finally:
        await created.tear_down()


async def _keep_producing(world: SpendWorld, plan: Plan, chunks: list[list[SpendReported]], pause_s: float = 0.1) -> int:
    """An ad server: chunk after chunk, re-sending a chunk that failed (same event ids) until the
    broker takes it. Returns how many sends failed and were repeated."""
    repeated = 0
    loop = asyncio.get_running_loop()
    for chunk in chunks:
        give_up_at = loop.time() + 120
        while True:
            try:
                await asyncio.wait_for(world.send(plan, chunk), 30)
                break
            except (KafkaError, TimeoutError, OSError):
                repeated += 1
                if loop.time() > give_up_at:
                    raise
                await asyncio.sleep(0.5)
        await asyncio.sleep(pause_s)
    return repeated


async def _running_while_spend_arrives(world: SpendWorld, seed: int) -> tuple[Plan, Process, asyncio.Future[int]]:
    """2,400 events' worth of funds; 800 events sent, the service started and 200 applied, and
    1,600 more being produced in chunks (the returned future) while the test breaks something."""
    rng = random.Random(seed)
    plan = make_plan(world.tag)
    fund(plan, 2400)
    await world.set_up(plan)
    await world.send(plan, make_spend(rng, plan, 800))
    process = world.start()
    await world.wait_applied(200, process)
    producing = asyncio.ensure_future(_keep_producing(world, plan, [make_spend(rng, plan, 80) for _ in range(20)]))
    await asyncio.sleep(0.3)
    return plan, process, producing


async def test_s1_kafka_restarted_mid_stream_the_consumer_recovers_alone_and_takes_every_event_once(
    world: SpendWorld, private_stack: PrivateStack
) -> None:
    plan, process, producing = await _running_while_spend_arrives(world, seed=11)
    await asyncio.to_thread(private_stack.restart_kafka)
    await producing
    await world.wait_done(process, timeout_s=180)

    assert process.alive(), f"the service did not survive the broker restart: {process.tail()}"
    result = await world.assert_exactly_once(plan)
    assert result["sent"] == 2400
    assert process.terminate() == 0, process.tail()


async def test_s1_postgres_restarted_mid_stream_the_service_exits_non_zero_is_restarted_and_takes_every_event_once(
    world: SpendWorld, private_stack: PrivateStack
) -> None:
    plan, process, producing = await _running_while_spend_arrives(world, seed=12)
    await asyncio.to_thread(private_stack.stop_postgres)
    # The database stays down while spend keeps arriving; the service notices at its next batch.
    await until(_exited(process), "the service to stop on the lost database, non-zero", 60)
    await asyncio.to_thread(private_stack.start_postgres)
    exits = [process.popen.returncode]
    await producing

    # The orchestrator: restart whatever exits, until everything is applied.
    process = world.start()

    async def done() -> bool:
        nonlocal process
        if not process.alive():
            exits.append(process.popen.returncode)
            process = world.start()
            return False
        total = await world.spend_end_offsets()
        rows = await world.fetch(f"select count(*) as n from {world.schema}.outbox")
        return await world.applied_offsets() >= total and int(rows[0]["n"]) == 0

    await until(done, "every spend event applied after the PostgreSQL restart", 180, 0.2)
    assert exits and all(code not in (0, None) for code in exits), f"the service exited non-zero on the lost database: {exits}"
    assert len(exits) <= 3, f"the service kept failing once the database was back: {exits}"
    await world.assert_exactly_once(plan)
    assert process.terminate() == 0, process.tail()


def _exited(process: Process):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return not process.alive()

    return check
