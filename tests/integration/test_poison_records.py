"""Rule S5 for every consumer: a record that is the record's fault never stops the stream, not even
after it decoded. Each test sends poison among good records to the real broker and database and
proves the poison is dead-lettered with a reason, the good records are applied once, and the
consumer keeps going."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import asyncpg
import pytest
from pydantic import Field

from adledger_libs.consumer import Inbound, RecordRejected, Subscription, TransactionalConsumer, reject
from adledger_libs.events import Event, encode
from adledger_libs.kafka import make_producer
from adledger_libs.outbox import OutboxRelay, UnitOfWork

from .conftest import Stack, TopicFactory, unique
from .kafka_io import Record, produce, read_all

pytestmark = pytest.mark.integration


class ThingCounted(Event):
    """A test event: `thing_id` is a plain string on purpose (not an Identifier), so a NUL byte
    decodes and reaches the database, which refuses it."""

    MESSAGE_TYPE: ClassVar[str] = "ThingCounted"
    thing_id: str = Field(description="What was counted.")
    amount_micros: int = Field(description="How much, unbounded on purpose (the database's bigint bounds it).")


class ThingNamed(Event):
    """A second type on the same topic."""

    MESSAGE_TYPE: ClassVar[str] = "ThingNamed"
    thing_id: str = Field(description="What was named.")


def _thing(index: int, *, thing_id: str | None = None, amount_micros: int | None = None) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    event = ThingCounted(
        event_id=f"thing-{index}", thing_id=thing_id if thing_id is not None else f"t{index}",
        amount_micros=amount_micros if amount_micros is not None else index + 1,
    )
    envelope = encode(event, key="k", trace_id="trace")
    assert envelope.key is not None
    return envelope.key, envelope.value, list(envelope.headers)


async def _tables(pool: asyncpg.Pool) -> None:
    # No unique constraint: a record applied twice would show as two rows.
    await pool.execute("create table effects (event_id text not null, thing_id text not null, amount_micros bigint not null)")
    # One running total per thing: two amounts that each fit can overflow it together.
    await pool.execute("create table totals (thing_id text primary key, total_micros bigint not null)")


def _handler(*, refuse: Callable[[ThingCounted], bool] = lambda _: False) -> Any:
    async def handle(uow: UnitOfWork, batch: list[Inbound[ThingCounted]]) -> None:
        for inbound in batch:
            if refuse(inbound.message):
                raise RecordRejected(f"thing {inbound.message.thing_id} is refused")
        await uow.conn.executemany(
            "insert into effects (event_id, thing_id, amount_micros) values ($1, $2, $3)",
            [(item.event_id, item.message.thing_id, item.message.amount_micros) for item in batch],
        )
        await uow.conn.executemany(
            """insert into totals (thing_id, total_micros) values ($1, $2)
               on conflict (thing_id) do update set total_micros = totals.total_micros + excluded.total_micros""",
            [(item.message.thing_id, item.message.amount_micros) for item in batch],
        )

    return handle


def _consumer(
    stack: Stack, pool: asyncpg.Pool, topic: str, *subscriptions: Subscription, group: str | None = None
) -> TransactionalConsumer:
    return TransactionalConsumer(
        pool, bootstrap_servers=stack.kafka_bootstrap_servers, group_id=group or unique("group"),
        subscriptions=list(subscriptions) or [Subscription(topic=topic, model=ThingCounted, handler=_handler())],
    )


async def _run_until_applied(consumer: TransactionalConsumer, pool: asyncpg.Pool, event_id: str, polls: int = 200) -> None:
    """Poll until the sentinel event is applied: the stream went past everything before it."""
    await consumer.start()
    try:
        for _ in range(polls):
            await consumer.poll_once()
            if await pool.fetchval("select count(*) from effects where event_id = $1", event_id):
                return
        raise AssertionError(f"{event_id} was not applied: the stream stopped")
    finally:
        await consumer.stop()


async def _dead_letters(stack: Stack, pool: asyncpg.Pool, dlq: str, expect: int) -> list[Record]:
    producer = make_producer(stack.kafka_bootstrap_servers, "tests")
    await producer.start()
    try:
        await OutboxRelay(pool, producer, schema=await pool.fetchval("select current_schema()")).publish_pending()
    finally:
        await producer.stop()
    return await read_all(stack.kafka_bootstrap_servers, dlq, expect=expect)


async def _topic_with_dlq(new_topic: TopicFactory, prefix: str) -> tuple[str, str]:
    topic = await new_topic(prefix, partitions=1)
    await new_topic.create(topic + ".dlq", partitions=1)
    return topic, topic + ".dlq"


async def test_s5_a_record_a_handler_refuses_after_decoding_is_dead_lettered_and_the_rest_applied_once(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic, dlq = await _topic_with_dlq(new_topic, "refused")
    await _tables(pool)
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(index, thing_id="poison" if index == 4 else None) for index in range(10)])
    subscription = Subscription(topic=topic, model=ThingCounted, handler=_handler(refuse=lambda thing: thing.thing_id == "poison"))
    consumer = _consumer(stack, pool, topic, subscription)
    await _run_until_applied(consumer, pool, "thing-9")
    rows = await pool.fetch("select event_id from effects order by event_id")
    assert sorted(row["event_id"] for row in rows) == sorted(f"thing-{index}" for index in range(10) if index != 4)
    [dead] = await _dead_letters(stack, pool, dlq, expect=1)
    assert dead.headers["dlq-offset"] == "4" and dead.headers["dlq-reason"] == "thing poison is refused"
    assert dead.value == _thing(4, thing_id="poison")[1], "the record is kept byte for byte"


async def test_s5_a_value_the_database_rejects_is_dead_lettered_and_the_stream_goes_on(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic, dlq = await _topic_with_dlq(new_topic, "nul")
    await _tables(pool)
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(0), _thing(1, thing_id="a\x00b"), _thing(2)])
    consumer = _consumer(stack, pool, topic)
    await _run_until_applied(consumer, pool, "thing-2")
    assert await pool.fetchval("select count(*) from effects") == 2
    [dead] = await _dead_letters(stack, pool, dlq, expect=1)
    assert dead.headers["dlq-offset"] == "1" and "CharacterNotInRepertoireError" in dead.headers["dlq-reason"]


async def test_s5_a_value_a_check_constraint_refuses_is_dead_lettered_and_the_stream_goes_on(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    """A table's check constraint guards an invariant the record's values break (a negative amount that
    decoded): the record is at fault, dead-lettered with the constraint named, never a stopped stream."""
    topic, dlq = await _topic_with_dlq(new_topic, "check")
    await _tables(pool)
    await pool.execute("alter table effects add constraint effects_amount_positive check (amount_micros > 0)")
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(0), _thing(1, amount_micros=-5), _thing(2)])
    consumer = _consumer(stack, pool, topic)
    await _run_until_applied(consumer, pool, "thing-2")
    assert sorted(row["event_id"] for row in await pool.fetch("select event_id from effects")) == ["thing-0", "thing-2"]
    [dead] = await _dead_letters(stack, pool, dlq, expect=1)
    assert dead.headers["dlq-offset"] == "1"
    assert "CheckViolationError" in dead.headers["dlq-reason"] and "effects_amount_positive" in dead.headers["dlq-reason"]


async def test_s5_amounts_whose_sum_passes_what_the_database_holds_dead_letter_only_the_one_that_overflows(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic, dlq = await _topic_with_dlq(new_topic, "overflow")
    await _tables(pool)
    half = 2**62 + 1  # fits a bigint alone; twice it does not
    records = [_thing(0, thing_id="big", amount_micros=half), _thing(1, thing_id="big", amount_micros=half), _thing(2)]
    await produce(stack.kafka_bootstrap_servers, topic, [*records, _thing(3, amount_micros=2**63)])
    consumer = _consumer(stack, pool, topic)
    await _run_until_applied(consumer, pool, "thing-2")
    assert await pool.fetchval("select total_micros from totals where thing_id = 'big'") == half
    dead = await _dead_letters(stack, pool, dlq, expect=2)
    assert [record.headers["dlq-offset"] for record in dead] == ["1", "3"]
    assert "NumericValueOutOfRange" in dead[0].headers["dlq-reason"]
    assert "int64" in dead[1].headers["dlq-reason"], "2^63 never reaches the database"


async def test_s5_a_record_aiokafka_cannot_read_is_dead_lettered_by_position_and_no_good_record_is_lost(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic, dlq = await _topic_with_dlq(new_topic, "unreadable")
    await _tables(pool)
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(index) for index in range(3)])
    produce_with_unreadable_header_key(stack.kafka_bootstrap_servers, topic, b'{"anything": 1}')
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(index) for index in range(3, 6)])
    consumer = _consumer(stack, pool, topic)
    await _run_until_applied(consumer, pool, "thing-5")
    rows = await pool.fetch("select event_id from effects")
    assert sorted(row["event_id"] for row in rows) == [f"thing-{index}" for index in range(6)], "each once"
    [dead] = await _dead_letters(stack, pool, dlq, expect=1)
    assert dead.headers["dlq-offset"] == "3" and "cannot be read" in dead.headers["dlq-reason"]


async def test_s5_a_dead_lettered_event_sent_again_after_its_cause_is_fixed_is_applied_once(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic, dlq = await _topic_with_dlq(new_topic, "fixed")
    await _tables(pool)
    await pool.execute("create table known (thing_id text primary key)")

    async def handle(uow: UnitOfWork, batch: list[Inbound[ThingCounted]]) -> None:
        known = {row["thing_id"] for row in await uow.conn.fetch("select thing_id from known")}
        for inbound in batch:
            if inbound.message.thing_id in known:
                await uow.conn.execute(
                    "insert into effects (event_id, thing_id, amount_micros) values ($1, $2, $3)",
                    inbound.event_id, inbound.message.thing_id, inbound.message.amount_micros,
                )
            else:
                reject(uow, inbound, f"unknown thing {inbound.message.thing_id}")

    subscription = Subscription(topic=topic, model=ThingCounted, handler=handle)
    group = unique("group")
    await pool.execute("insert into known values ('sentinel-a'), ('sentinel-b'), ('sentinel-c')")
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(1, thing_id="late"), _thing(2, thing_id="sentinel-a")])
    await _run_until_applied(_consumer(stack, pool, topic, subscription, group=group), pool, "thing-2")
    assert await pool.fetchval("select count(*) from effects where thing_id = 'late'") == 0
    # The cause is fixed; the same event arrives again (an ad server's retry, an operator's replay).
    await pool.execute("insert into known values ('late')")
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(1, thing_id="late"), _thing(3, thing_id="sentinel-b")])
    await _run_until_applied(_consumer(stack, pool, topic, subscription, group=group), pool, "thing-3")
    await produce(stack.kafka_bootstrap_servers, topic, [_thing(1, thing_id="late"), _thing(4, thing_id="sentinel-c")])
    await _run_until_applied(_consumer(stack, pool, topic, subscription, group=group), pool, "thing-4")
    assert await pool.fetchval("select count(*) from effects where thing_id = 'late'") == 1, "applied once, then deduped"
    [dead] = await _dead_letters(stack, pool, dlq, expect=1)
    assert dead.headers["dlq-reason"] == "unknown thing late"


async def test_records_of_several_types_on_one_topic_are_handled_in_the_order_they_were_sent(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic = await new_topic("ordered", partitions=1)
    await _tables(pool)
    seen: list[str] = []

    async def counted(uow: UnitOfWork, batch: list[Inbound[ThingCounted]]) -> None:
        seen.extend(f"counted:{inbound.message.thing_id}" for inbound in batch)
        await _handler()(uow, batch)

    async def named(uow: UnitOfWork, batch: list[Inbound[ThingNamed]]) -> None:
        seen.extend(f"named:{inbound.message.thing_id}" for inbound in batch)

    def named_record(thing_id: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        envelope = encode(ThingNamed(thing_id=thing_id), key="k", trace_id="trace")
        return b"k", envelope.value, list(envelope.headers)

    await produce(stack.kafka_bootstrap_servers, topic, [_thing(1), named_record("n1"), _thing(2), _thing(3), named_record("n2"), _thing(4)])
    consumer = _consumer(
        stack, pool, topic,
        Subscription(topic=topic, model=ThingNamed, handler=named),
        Subscription(topic=topic, model=ThingCounted, handler=counted),
    )
    await _run_until_applied(consumer, pool, "thing-4")
    assert seen == ["counted:t1", "named:n1", "counted:t2", "counted:t3", "named:n2", "counted:t4"]


async def test_after_commit_callbacks_run_for_what_committed_and_never_for_an_isolated_poison(
    stack: Stack, pool: asyncpg.Pool, new_topic: TopicFactory
) -> None:
    topic = await new_topic("after-commit", partitions=1)
    await _tables(pool)
    remembered: list[str] = []

    async def handle(uow: UnitOfWork, batch: list[Inbound[ThingCounted]]) -> None:
        for inbound in batch:
            uow.after_commit(lambda thing=inbound.message.thing_id: remembered.append(thing))
        await _handler(refuse=lambda thing: thing.thing_id == "poison")(uow, batch)

    await produce(stack.kafka_bootstrap_servers, topic, [_thing(1), _thing(2, thing_id="poison"), _thing(3)])
    await _run_until_applied(_consumer(stack, pool, topic, Subscription(topic=topic, model=ThingCounted, handler=handle)), pool, "thing-3")
    assert remembered == ["t1", "t3"]


def produce_with_unreadable_header_key(bootstrap: str, topic: str, value: bytes) -> None:
    """One record whose header key is not UTF-8, as a careless or hostile producer can send (the
    broker accepts it; aiokafka refuses to read it). aiokafka's own producer only writes str keys,
    so its pure-Python record builder is given a key object that encodes to invalid bytes, in a
    process of its own (the compiled builder checks the type)."""
    script = f"""
import asyncio
from aiokafka import AIOKafkaProducer

class Unreadable(str):
    def encode(self, *args, **kwargs):
        return b"\\xff\\xfe-not-utf-8"

async def main():
    producer = AIOKafkaProducer(bootstrap_servers={bootstrap!r}, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait({topic!r}, {value!r}, key=b"k", headers=[(Unreadable("x"), b"v")])
    finally:
        await producer.stop()

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"})

