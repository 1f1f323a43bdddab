"""Reading and writing test records on the real broker, and deleting what a test world leaves there."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from adledger_libs.events import headers_to_dict


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


def first_of_each_event_id(records: list[Record]) -> list[Record]:
    """The records a subscriber acts on: the first of each event id (header `event-id`). A pause
    leaves delivery.control.v1 twice by design (issue 14: the moment it is decided, and from the
    outbox after the commit), under one event id, and subscribers dedupe (CONTRACT.md)."""
    seen: set[str] = set()
    kept: list[Record] = []
    for record in records:
        event_id = record.headers.get("event-id", f"{record.topic}:{record.partition}:{record.offset}")
        if event_id not in seen:
            seen.add(event_id)
            kept.append(record)
    return kept


async def produce(
    bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> list[tuple[int, int]]:
    """Produce (key, value, headers) records in order; returns (partition, offset) of each.
    Fails after 60 s rather than letting the producer retry for ever."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await asyncio.wait_for(producer.start(), 60)
    try:

        async def send_all() -> list[tuple[int, int]]:
            futures = [await producer.send(topic, value=value, key=key, headers=headers) for key, value, headers in items]
            metadata = await asyncio.gather(*futures)
            return [(item.partition, item.offset) for item in metadata]

        try:
            return await asyncio.wait_for(send_all(), 60)
        except TimeoutError:
            raise AssertionError(f"{topic}: {len(items)} records not acknowledged within 60s") from None
    finally:
        await asyncio.wait_for(producer.stop(), 30)


async def read_all(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0, settle_s: float = 0.5) -> list[Record]:
    """Read a topic from the beginning until at least `expect` records arrived, then keep
    reading for `settle_s` more to catch any extra (a duplicate) record; fail on timeout."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if loop.time() > deadline:
                raise AssertionError(f"{topic}: no partitions known within {timeout_s}s (does the topic exist?)")
            await consumer._client.force_metadata_update()  # noqa: SLF001 - the topic was just created
            partitions = consumer.partitions_for_topic(topic)
        assigned = [TopicPartition(topic, number) for number in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        # Everything already on the topic is read, however much that is, before settling.
        ends = await consumer.end_offsets(assigned)
        records: list[Record] = []
        settle_until: float | None = None
        while True:
            now = loop.time()
            caught_up = True
            for tp, end in ends.items():
                caught_up = caught_up and await consumer.position(tp) >= end
            if settle_until is None and len(records) >= expect and caught_up:
                settle_until = now + settle_s
            if settle_until is not None and now >= settle_until:
                return records
            if now > deadline:
                raise AssertionError(f"{topic}: got {len(records)} records, expected {expect}, within {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=100)
            for tp_records in batch.values():
                records.extend(
                    Record(r.topic, r.partition, r.offset, r.key, r.value, headers_to_dict(r.headers)) for r in tp_records
                )
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        # The consumer knows no topic's partitions until it fetched their metadata: without this,
        # an empty answer made start_at_end store no positions, so services replayed the topics.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20.0
        while missing := [topic for topic in topics if not consumer.partitions_for_topic(topic)]:
            if loop.time() > deadline:
                raise AssertionError(f"no partitions known for {missing} within 20s")
            await consumer._client.force_metadata_update()  # noqa: SLF001 - as in read_all
        partitions = [TopicPartition(topic, number) for topic in topics for number in consumer.partitions_for_topic(topic)]
        # An assigned consumer, as in read_all: aiokafka's stop() of an unassigned one is cancelled.
        consumer.assign(partitions)
        offsets = dict(await consumer.end_offsets(partitions))
        # Let the consumer's own start-up tasks run once before it is stopped (as read_all does).
        await consumer.getmany(timeout_ms=10)
        return offsets
    finally:
        await consumer.stop()


async def start_at_end(bootstrap: str, database_url: str, schema: str, group: str, topics: list[str]) -> None:
    """Store a fresh consumer group's positions at the end of shared topics (the database is the
    truth for positions), so a test's service reads only what the test sends, and does not
    replay, and dead-letter, everything earlier runs left on the shared topics."""
    import asyncpg

    offsets = await end_offsets(bootstrap, topics)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            f"insert into {schema}.consumer_positions (group_id, topic, partition, next_offset) values ($1, $2, $3, $4)",
            [(group, tp.topic, tp.partition, offset) for tp, offset in offsets.items()],
        )
    finally:
        await conn.close()


# Consumer groups outlive their consumers on the broker: without this, the shared broker lists every test
# world that ever ran (`deploy/local/kafka consumer-groups --list`). Every name a test makes carries a
# random tag (`new_world_tag`, through `conftest.unique`); when the test ends, the groups whose names carry
# one of its tags are deleted (tests/integration/conftest.py).
_world_tags: set[str] = set()


def new_world_tag() -> str:
    """A random tag for the names of the current test's world, remembered for the clean-up at its end."""
    tag = uuid.uuid4().hex[:10]
    _world_tags.add(tag)
    return tag


def take_world_tags() -> set[str]:
    """The tags made since the last call, forgotten here."""
    taken = set(_world_tags)
    _world_tags.clear()
    return taken


def delete_consumer_groups(bootstrap: str, tags: set[str], *, timeout_s: float = 10.0) -> list[str]:
    """Delete the broker's consumer groups whose names carry one of `tags`; returns those deleted.

    Bounded by `timeout_s` per request. A group that still has members (an instance not stopped yet) is
    refused by the broker and left; aiokafka has no DeleteGroups, so confluent-kafka's admin client does it.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000)})
    listed = admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s)
    names = sorted(group.group_id for group in listed.valid if any(tag in group.group_id for tag in tags))
    if not names:
        return []
    deleted = []
    for name, future in admin.delete_consumer_groups(names, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            deleted.append(name)
        except Exception:  # noqa: BLE001 - a group in use, or already gone: nothing to clean up then
            continue
    return deleted


def encoded(message: Any, key: str, *, topic: str, trace_id: str = "trace-test") -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """A message as a (key, value, headers) record, signed as the service that may send it when its
    type must be signed (`SIGNED_BY`; the command's `requested_by`, or the one service allowed), with
    that service's key in the test session's secrets, which the services under test trust."""
    from adledger_auth.signatures import HEADER_SIGNATURE, service_key
    from adledger_libs.events import encode
    from adledger_libs.settings import ServiceSettings

    envelope = encode(message, key=key, trace_id=trace_id)
    headers = list(envelope.headers)
    allowed = type(message).SIGNED_BY
    if allowed:
        principal = getattr(message, "requested_by", None) or sorted(allowed)[0]
        signer = service_key(ServiceSettings().secrets_path() / "services", principal, make=True)
        headers.append((HEADER_SIGNATURE, signer.sign(topic, envelope.key, envelope.value).encode()))
    return envelope.key, envelope.value, headers
