"""Rule S1 under failure: the spend consumer as a real process, SIGKILLed at random points and at
exact crash points, and two instances in one group through a rebalance and a kill. Whatever
happens, every balance ends exact to the micro, each event id is applied once, and each pause is
decided once (an outbox re-send carries the same event id, never a second decision).

These run on the shared stack (nothing here restarts Kafka or PostgreSQL); the broker and database
restarts are in test_resilience_restarts.py, on a private stack.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient

from ..conftest import Stack
from ..kafka_io import read_all
from .harness import Process, SpendWorld, fund, make_plan, make_spend, until

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def world(stack: Stack, tmp_path: Path) -> AsyncIterator[SpendWorld]:
    created = SpendWorld(stack.kafka_bootstrap_servers, stack.database_url, tmp_path)
    try:
        yield created
    finally:
        await created.tear_down()


async def test_s1_spend_consumer_sigkilled_at_seeded_random_points_takes_every_event_exactly_once(world: SpendWorld) -> None:
    rng = random.Random(20261121)
    plan = make_plan(world.tag)
    total, chunks = 2400, 4
    fund(plan, total)
    await world.set_up(plan)
    batches = [make_spend(rng, plan, total // chunks) for _ in range(chunks)]
    await world.send(plan, batches[0])
    process = world.start()
    kills: list[tuple[int, int]] = []
    for batch in batches[1:] + [[]]:
        applied = max(await world.applied_offsets(), 0)
        # A seeded point in the backlog: somewhere in the next few batches, inside or between them.
        await world.wait_applied(applied + rng.randint(1, 200), process)
        process.sigkill()
        kills.append((await world.applied_offsets(), len(plan.sent)))
        if batch:
            await world.send(plan, batch)
        process = world.start()
    await world.wait_done(process)
    result = await world.assert_exactly_once(plan)
    assert all(applied < sent for applied, sent in kills), f"every kill lands mid-backlog: {kills}"
    assert result["sent"] > result["events"], "some events were re-sent with the same id"
    assert process.terminate() == 0, process.tail()


async def test_s1_killed_between_database_and_offset_commits_and_between_publish_and_outbox_delete(world: SpendWorld) -> None:
    rng = random.Random(4)
    plan = make_plan(world.tag)
    fund(plan, 1500)
    await world.set_up(plan)
    await world.send(plan, make_spend(rng, plan, 700))

    # 1. Killed after its database transaction committed, before Kafka heard of the offsets.
    crashed = world.start(crash_point="offset_commit", crash_after=rng.randint(3, 8))
    assert await _exit_code(crashed) == -9, crashed.tail()
    applied = await world.applied_offsets()
    committed = await _kafka_committed(world)
    assert 0 < applied and committed < applied, f"Kafka's committed offsets ({committed}) lag the stored positions ({applied})"

    # 2. Killed after Kafka acknowledged the outbox rows, before they were deleted: published twice.
    await world.send(plan, make_spend(rng, plan, 800))
    crashed = world.start(crash_point="outbox_published", crash_after=2)
    assert await _exit_code(crashed) == -9, crashed.tail()

    # 3. Restarted, and on top of that every partition is read again from offset 0 (a redelivery
    # of everything): the stored positions skip what was applied, the event ids the re-sends.
    process = world.start(rewind=True)
    await world.wait_done(process)
    result = await world.assert_exactly_once(plan)
    redelivered = await _metric(process, "adledger_messages_handled_total", {"topic": world.spend_topic, "outcome": "redelivered"})
    assert redelivered >= applied, f"the records applied before the crashes were redelivered and skipped ({redelivered})"
    republished = Counter()
    for name in (world.balances_topic, world.control_topic, world.state_topic):
        records = await read_all(world.bootstrap, name, expect=0, settle_s=0.3)
        republished.update(record.headers["event-id"] for record in records)
    assert any(count > 1 for count in republished.values()), "the outbox crash re-published rows with their event ids"
    assert result["control_decisions"] > 0
    assert process.terminate() == 0, process.tail()


async def test_s1_two_instances_in_one_group_share_the_work_through_a_rebalance_and_a_sigkill(world: SpendWorld) -> None:
    rng = random.Random(2)
    plan = make_plan(world.tag, rich=5)
    fund(plan, 5000)
    await world.set_up(plan)
    await world.send(plan, make_spend(rng, plan, 1200))
    first = world.start(name="first")
    await world.wait_applied(100, first)

    second = world.start(name="second")
    await world.send(plan, make_spend(rng, plan, 1200))

    async def split() -> bool:
        a, b = _spend_partitions(first, world), _spend_partitions(second, world)
        return bool(a) and bool(b) and not (a & b) and len(a | b) == world.spend_partitions

    await until(split, "both instances holding spend partitions at once", 60)
    await world.send(plan, make_spend(rng, plan, 2000))
    await world.wait_applied(await world.applied_offsets() + rng.randint(50, 300), second)
    first.sigkill()
    killed_at = await world.applied_offsets()
    assert killed_at < len(plan.sent), f"the kill lands mid-stream ({killed_at} of {len(plan.sent)} applied)"
    await world.send(plan, make_spend(rng, plan, 600))
    await world.wait_done(second)

    assert _spend_partitions(second, world) == set(range(world.spend_partitions)), "the survivor took every partition over"
    await world.assert_exactly_once(plan)
    assert second.terminate() == 0, second.tail()


def _spend_partitions(process: Process, world: SpendWorld) -> set[int]:
    """The spend partitions of the instance's latest assignment, from its log."""
    assigned = process.log_events("partitions_assigned")
    if not assigned:
        return set()
    prefix = world.spend_topic + ":"
    return {int(item.rpartition(":")[2]) for item in assigned[-1]["partitions"] if item.startswith(prefix)}


async def _exit_code(process: Process, timeout_s: float = 60.0) -> int:
    async def exited() -> bool:
        return not process.alive()

    await until(exited, "the instance to crash at its crash point", timeout_s)
    return int(process.popen.returncode)


async def _kafka_committed(world: SpendWorld) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=world.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(world.group)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == world.spend_topic and meta.offset > 0)


async def _metric(process: Process, name: str, labels: dict[str, str]) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{process.port}/metrics", timeout=5)).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        rendered, _, value = line.rpartition(" ")
        if all(f'{key}="{wanted}"' in rendered for key, wanted in labels.items()):
            total += float(value)
    return total


async def test_s1_two_instances_pause_the_accounts_of_one_business_center_once_without_crashing(world: SpendWorld) -> None:
    """Under ABA the accounts of one Business Center share its funds but not their key, so two
    instances take their spend on different partitions at the same time, and both batches can
    see the Business Center reach zero. The pause must be decided once, and no instance may fail
    on it (a first pause has no delivery-state row yet to lock)."""
    rng = random.Random(7)
    plan = make_plan(world.tag, rich=0, limited=0, centers=3, per_center=6)
    fund(plan, 3000)
    await world.set_up(plan)
    first, second = world.start(name="first"), world.start(name="second")

    async def split() -> bool:
        a, b = _spend_partitions(first, world), _spend_partitions(second, world)
        return bool(a) and bool(b) and not (a & b) and len(a | b) == world.spend_partitions

    await until(split, "both instances holding spend partitions at once", 60)
    await world.send(plan, make_spend(rng, plan, 3000))
    await world.wait_done(second)
    assert first.alive(), f"an instance failed on the shared pause: {first.tail(1500)}"
    await world.assert_exactly_once(plan)
    assert first.terminate() == 0, first.tail()
    assert second.terminate() == 0, second.tail()
