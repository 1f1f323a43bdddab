"""The exactly-once pattern of libs/, proven against the real broker and database.

A handler's effects, the consumed position and its outgoing events are written in one
PostgreSQL transaction; the relay publishes afterwards; consumers drop what they already applied.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any, ClassVar

import asyncpg
import pytest
from aiokafka import TopicPartition
from pydantic import Field

from adledger_libs.consumer import Inbound, Subscription, TransactionalConsumer
from adledger_libs.events import Event, encode
from adledger_libs.kafka import make_producer
from adledger_libs.money import PositiveMicros
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work

from .conftest import Stack, TopicFactory, unique
from .kafka_io import produce, read_all

pytestmark = pytest.mark.integration


class ThingCounted(Event):
    """A test event."""

    MESSAGE_TYPE: ClassVar[str] = "ThingCounted"
    thing_id: str = Field(description="What was counted.")
    amount_micros: PositiveMicros = Field(description="How much.")


async def _effects_table(pool: asyncpg.Pool) -> None:
    # No unique constraint on purpose: a double application would show as two rows.
    await pool.execute(
        "create table effects (event_id text not null, thing_id text not null, amount_micros bigint not null)"
    )


def _recording_handler() -> Any:
    async def handle(uow: UnitOfWork, batch: list[Inbound[ThingCounted]]) -> None:
        await uow.conn.executemany(
            "insert into effects (event_id, thing_id, amount_micros) values ($1, $2, $3)",
            [(item.event_id, item.message.thing_id, item.message.amount_micros) for item in batch],
        )

    return handle


def _thing(index: int, *, trace_id: str = "trace") -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    event = ThingCounted(event_id=f"thing-{index}", thing_id=f"t{index % 7}", amount_micros=index + 1)
    envelope = encode(event, key=event.thing_id, trace_id=trace_id)
    assert envelope.key is not None
    return envelope.key, envelope.value, list(envelope.headers)


def _consumer(
    stack: Stack, pool: asyncpg.Pool, group: str, topic: str, *, dedupe_by_event_id: bool = True, **kw: Any
) -> TransactionalConsumer:
    """A consumer that records each applied event as a row. With `dedupe_by_event_id=False` only
    the stored positions stand between a redelivery and a double effect, which is what the
    redelivery and rebalance tests prove."""
    subscription = Subscription(
        topic=topic, model=ThingCounted, handler=_recording_handler(), dedupe_by_event_id=dedupe_by_event_id
    )
    return TransactionalConsumer(
        pool, bootstrap_servers=stack.kafka_bootstrap_servers, group_id=group, subscriptions=[subscription], **kw
    )


async def _poll_until(consumer: TransactionalConsumer, pool: asyncpg.Pool, rows: int, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await pool.fetchval("select count(*) from effects") < rows:
        if loop.time() > deadline:
            raise AssertionError(f"effects did not reach {rows} rows within {timeout_s}s")
        await consumer.poll_once()


async def test_outbox_publishes_what_was_committed_before_a_crash_exactly_once(
    stack: Stack, pool: asyncpg.Pool, schema: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("outbox")
    async with unit_of_work(pool) as uow:
        for index in range(3):
            uow.publish(ThingCounted(thing_id=f"t{index}", amount_micros=index + 1), topic=topic, key=f"t{index}")
    async with unit_of_work(pool) as uow:  # a bigger batch takes the COPY path
        for index in range(3, 25):
            uow.publish(ThingCounted(thing_id=f"t{index}", amount_micros=index + 1), topic=topic, key=f"t{index}")
    # The service "crashed" here: committed, nothing published yet.
    assert await pool.fetchval("select count(*) from outbox") == 25
    producer = make_producer(stack.kafka_bootstrap_servers, "tests")
    await producer.start()
    try:
        relay = OutboxRelay(pool, producer, schema=schema)
        assert await relay.publish_pending() == 25
        assert await relay.publish_pending() == 0
    finally:
        await producer.stop()
    records = await read_all(stack.kafka_bootstrap_servers, topic, expect=25)
    assert len(records) == 25
    assert len({record.headers["event-id"] for record in records}) == 25
    by_key = {record.key: int(json.loads(record.value or b"{}")["amount_micros"]) for record in records}
    assert by_key == {f"t{index}".encode(): index + 1 for index in range(25)}
    assert all(record.headers["event-type"] == "ThingCounted" for record in records)
    assert await pool.fetchval("select count(*) from outbox") == 0


async def test_outbox_crash_after_publish_resends_same_event_ids_and_the_consumer_applies_each_once(
    stack: Stack, pool: asyncpg.Pool, schema: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("outbox-crash")
    await _effects_table(pool)
    async with unit_of_work(pool) as uow:
        for index in range(3):
            uow.publish(ThingCounted(thing_id=f"t{index}", amount_micros=10), topic=topic, key=f"t{index}")

    async def crash(_: list[int]) -> None:
        raise RuntimeError("killed between the publish and the delete")

    producer = make_producer(stack.kafka_bootstrap_servers, "tests")
    await producer.start()
    try:
        with pytest.raises(RuntimeError, match="killed"):
            await OutboxRelay(pool, producer, schema=schema, after_publish=crash).publish_pending()
        assert await pool.fetchval("select count(*) from outbox") == 3, "rows survive the crash"
        assert await OutboxRelay(pool, producer, schema=schema).publish_pending() == 3
    finally:
        await producer.stop()

    records = await read_all(stack.kafka_bootstrap_servers, topic, expect=6)
    ids = Counter(record.headers["event-id"] for record in records)
    assert len(records) == 6 and set(ids.values()) == {2}, "each event is on the topic twice, with the same id"

    consumer = _consumer(stack, pool, unique("group"), topic)
    await consumer.start()
    try:
        await _poll_until(consumer, pool, rows=3)
        for _ in range(5):  # give any duplicate every chance to be applied
            await consumer.poll_once()
    finally:
        await consumer.stop()
    applied = Counter(row["event_id"] for row in await pool.fetch("select event_id from effects"))
    assert applied == Counter({event_id: 1 for event_id in ids})


async def test_a_redelivered_input_is_applied_once(stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory) -> None:
    topic = await new_topic("redelivery", partitions=2)
    await _effects_table(pool)
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(index) for index in range(20)])
    group = unique("group")

    first = _consumer(stack, pool, group, topic, dedupe_by_event_id=False)

    async def crash_before_kafka_commit(_: dict[TopicPartition, int]) -> None:
        return None  # the process died after the database commit: Kafka never heard of it

    first._commit_offsets = crash_before_kafka_commit  # type: ignore[method-assign]
    await first.start()
    try:
        await _poll_until(first, pool, rows=20)
    finally:
        await first.stop()

    second = _consumer(stack, pool, group, topic, dedupe_by_event_id=False)
    await second.start()
    try:
        while not second.assignment():
            await second.poll_once()
        # Even when the broker hands the records over again (we rewind by hand, as a lost
        # commit would), the stored positions recognise them and nothing is applied twice.
        for tp in second.assignment():
            second.seek(tp, 0)
        for _ in range(5):
            await second.poll_once()
    finally:
        await second.stop()
    assert await pool.fetchval("select count(*) from effects") == 20
    assert await pool.fetchval("select count(distinct event_id) from effects") == 20


async def test_a_re_sent_event_with_the_same_id_is_applied_once(stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory) -> None:
    topic = await new_topic("resend", partitions=1)
    await _effects_table(pool)
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(1), _thing(2), _thing(1), _thing(3), _thing(2)])
    consumer = _consumer(stack, pool, unique("group"), topic)
    await consumer.start()
    try:
        await _poll_until(consumer, pool, rows=3)
        for _ in range(3):
            await consumer.poll_once()
    finally:
        await consumer.stop()
    rows = await pool.fetch("select event_id from effects order by event_id")
    assert [row["event_id"] for row in rows] == ["thing-1", "thing-2", "thing-3"]


async def test_a_malformed_input_lands_in_the_dead_letter_topic_with_its_reason_and_the_next_is_handled(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic = await new_topic("dlq-source", partitions=1)
    dlq = topic + ".dlq"
    await new_topic.create(dlq, partitions=1)
    await _effects_table(pool)
    float_amount = json.dumps({"event_id": "f-1", "thing_id": "t", "amount_micros": 1.5}).encode()
    await produce(
        stack.kafka_bootstrap_servers,
        topic,
        [
            (b"k", b"{this is not json", [("trace-id", b"trace-bad")]),
            (b"k", float_amount, []),
            _thing(42),
        ],
    )
    consumer = _consumer(stack, pool, unique("group"), topic)
    await consumer.start()
    try:
        await _poll_until(consumer, pool, rows=1)
    finally:
        await consumer.stop()
    assert [row["event_id"] for row in await pool.fetch("select event_id from effects")] == ["thing-42"]

    producer = make_producer(stack.kafka_bootstrap_servers, "tests")
    await producer.start()
    try:
        await OutboxRelay(pool, producer, schema=await pool.fetchval("select current_schema()")).publish_pending()
    finally:
        await producer.stop()
    dead = await read_all(stack.kafka_bootstrap_servers, dlq, expect=2)
    assert len(dead) == 2
    assert dead[0].value == b"{this is not json" and dead[0].headers["trace-id"] == "trace-bad"
    assert "invalid ThingCounted" in dead[0].headers["dlq-reason"]
    assert dead[1].value == float_amount and "amount_micros" in dead[1].headers["dlq-reason"]
    assert {record.headers["dlq-topic"] for record in dead} == {topic}
    assert [record.headers["dlq-offset"] for record in dead] == ["0", "1"]


async def test_two_consumers_in_one_group_split_partitions_and_survive_a_rebalance_without_double_effects(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic = await new_topic("rebalance", partitions=4)
    await _effects_table(pool)
    group = unique("group")
    bootstrap = stack.kafka_bootstrap_servers
    await produce(bootstrap, topic, [_thing(index) for index in range(300)])

    first = _consumer(stack, pool, group, topic, dedupe_by_event_id=False, max_batch_records=25)
    second = _consumer(stack, pool, group, topic, dedupe_by_event_id=False, max_batch_records=25)
    await first.start()
    first_task = asyncio.ensure_future(first.run())
    second_task: asyncio.Future[None] | None = None
    try:
        await _wait_for(lambda: _count(pool), at_least=50)
        await second.start()
        second_task = asyncio.ensure_future(second.run())
        await produce(bootstrap, topic, [_thing(index) for index in range(300, 600)])
        # Both instances hold partitions at the same time, and together all four.
        await _wait_for_async(lambda: _split(first, second))
        await produce(bootstrap, topic, [_thing(index) for index in range(600, 700)])
        await _wait_for(lambda: _count(pool), at_least=700)
        # One instance leaves; the other takes over its partitions and carries on.
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        await first.stop()
        await produce(bootstrap, topic, [_thing(index) for index in range(700, 800)])
        await _wait_for(lambda: _count(pool), at_least=800)
        assert len(second.assignment()) == 4
    finally:
        for task in (first_task, second_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await first.stop()
        await second.stop()
    applied = Counter(row["event_id"] for row in await pool.fetch("select event_id from effects"))
    assert len(applied) == 800
    assert set(applied.values()) == {1}, "no event applied twice across the rebalance"


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("select count(*) from effects"))


async def _split(first: TransactionalConsumer, second: TransactionalConsumer) -> bool:
    a, b = first.assignment(), second.assignment()
    return bool(a) and bool(b) and not (a & b) and len(a | b) == 4


async def _wait_for(measure: Any, *, at_least: int, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (value := await measure()) < at_least:
        if loop.time() > deadline:
            raise AssertionError(f"reached {value}, expected at least {at_least} within {timeout_s}s")
        await asyncio.sleep(0.05)


async def _wait_for_async(predicate: Any, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)
