"""The exactly-once consumer every service uses.

For each batch read from Kafka, in ONE PostgreSQL transaction:
1. lock the group's stored positions of the batch's partitions, and skip every record below
   them (a redelivery after a crash or a rebalance);
2. decode each record into its typed event at the edge; a record that fails goes to the
   dead-letter topic (through the outbox) with the reason, and the stream goes on;
3. drop records whose event id was already applied (a re-sent event, or an outbox re-publish);
4. run the handlers, which write their effects and record outgoing events;
5. write the outbox rows and the new positions.
Only after the commit are the offsets committed to Kafka: the database is the truth, Kafka's
committed offsets follow it for tooling and for where to start. On assignment the consumer
seeks to the stored positions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from adledger_contracts.topics import dead_letter_topic
from adledger_libs.events import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_TRACE_ID, DecodeError, Message, decode, headers_to_dict
from adledger_libs.logs import get_logger, new_trace_id
from adledger_libs.metrics import BATCH_RECORDS, BATCH_SECONDS, CONSUMER_LAG, MESSAGES_HANDLED
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work

log = get_logger(__name__)

M = TypeVar("M", bound=Message)

#: How often a batch is tried when PostgreSQL aborts it for a deadlock or serialisation failure.
_TRANSIENT_ATTEMPTS = 5


@dataclass(frozen=True)
class Inbound(Generic[M]):
    """A decoded record: the typed message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    message: M
    event_id: str
    trace_id: str


BatchHandler = Callable[[UnitOfWork, list[Inbound[Any]]], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """A topic, the message type its records must decode to, and the handler of a batch of them.

    The handler runs inside the batch's transaction: it writes effects through `uow.conn`, and
    records outgoing events with `uow.publish` and rejected records with `uow.dead_letter`.
    """

    topic: str
    model: type[Message]
    handler: BatchHandler
    dead_letter_topic: str = ""
    #: Drop a record whose event id this group already applied (a re-sent event).
    dedupe_by_event_id: bool = True

    @property
    def dlq(self) -> str:
        return self.dead_letter_topic or dead_letter_topic(self.topic)


class TransactionalConsumer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        bootstrap_servers: str,
        group_id: str,
        subscriptions: Sequence[Subscription],
        relay: OutboxRelay | None = None,
        max_batch_records: int = 2000,
        fetch_timeout_ms: int = 200,
        client_id: str | None = None,
    ) -> None:
        self._pool = pool
        self._group_id = group_id
        self._subscriptions: dict[str, list[Subscription]] = {}
        for subscription in subscriptions:
            self._subscriptions.setdefault(subscription.topic, []).append(subscription)
        self._relay = relay
        self._max_batch_records = max_batch_records
        self._fetch_timeout_ms = fetch_timeout_ms
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id or group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        self._started = False

    @property
    def group_id(self) -> str:
        return self._group_id

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(list(self._subscriptions), listener=_SeekToStoredPositions(self))
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def run(self) -> None:
        """Consume until cancelled. A handler's exception is a bug: it propagates and stops the service."""
        while True:
            await self.poll_once()

    async def poll_once(self) -> int:
        """Read one batch and apply it; returns how many records were read."""
        data = await self._consumer.getmany(timeout_ms=self._fetch_timeout_ms, max_records=self._max_batch_records)
        if not data:
            return 0
        records = [record for partition_records in data.values() for record in partition_records]
        started = time.perf_counter()
        next_offsets = await self._apply_with_retry(data)
        BATCH_SECONDS.labels(self._group_id).observe(time.perf_counter() - started)
        BATCH_RECORDS.labels(self._group_id).observe(len(records))
        await self._commit_offsets(next_offsets)
        return len(records)

    async def _apply_with_retry(self, data: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
        """Apply the batch; when PostgreSQL aborts it as a deadlock victim or a serialisation
        failure, the whole transaction was rolled back, so applying it again is safe."""
        for attempt in range(1, _TRANSIENT_ATTEMPTS + 1):
            try:
                return await self._apply(data)
            except (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError) as error:
                if attempt == _TRANSIENT_ATTEMPTS:
                    raise
                log.warning("batch_retried", group=self._group_id, attempt=attempt, error=repr(error))
                await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    async def _apply(self, data: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
        # A fixed order of partitions means a fixed order of row locks: no deadlock between instances.
        partitions = sorted(data, key=lambda tp: (tp.topic, tp.partition))
        next_offsets = {tp: data[tp][-1].offset + 1 for tp in partitions}
        async with unit_of_work(self._pool, self._relay) as uow:
            stored = await self._lock_positions(uow.conn, partitions)
            fresh: list[Any] = []
            for tp in partitions:
                for record in data[tp]:
                    if record.offset >= stored[tp]:
                        fresh.append(record)
                    else:
                        MESSAGES_HANDLED.labels(self._group_id, tp.topic, "redelivered").inc()
            decoded = self._decode(uow, fresh)
            accepted = await self._drop_applied(uow.conn, decoded)
            for topic, subscriptions in self._subscriptions.items():
                for subscription in subscriptions:
                    batch = [
                        inbound
                        for inbound in accepted
                        if inbound.topic == topic and type(inbound.message) is subscription.model
                    ]
                    if batch:
                        await subscription.handler(uow, batch)
                        MESSAGES_HANDLED.labels(self._group_id, topic, "applied").inc(len(batch))
            await uow.conn.execute(
                """update consumer_positions p set next_offset = v.next_offset, updated_at = now()
                   from unnest($2::text[], $3::int[], $4::bigint[]) as v(topic, partition, next_offset)
                   where p.group_id = $1 and p.topic = v.topic and p.partition = v.partition
                     and v.next_offset > p.next_offset""",
                self._group_id,
                [tp.topic for tp in partitions],
                [tp.partition for tp in partitions],
                [next_offsets[tp] for tp in partitions],
            )
        return next_offsets

    async def _lock_positions(self, conn: asyncpg.Connection, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Lock the positions of these partitions for this transaction. Two instances that hold
        the same partition for a moment during a rebalance serialise here, and the second sees
        the first's new position and skips what it applied."""
        topics = [tp.topic for tp in partitions]
        numbers = [tp.partition for tp in partitions]
        await conn.execute(
            """insert into consumer_positions (group_id, topic, partition, next_offset)
               select $1, t, p, 0 from unnest($2::text[], $3::int[]) as v(t, p)
               on conflict do nothing""",
            self._group_id,
            topics,
            numbers,
        )
        rows = await conn.fetch(
            """select p.topic, p.partition, p.next_offset from consumer_positions p
               join unnest($2::text[], $3::int[]) as v(t, n) on p.topic = v.t and p.partition = v.n
               where p.group_id = $1
               order by p.topic, p.partition
               for update of p""",
            self._group_id,
            topics,
            numbers,
        )
        return {TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    def _decode(self, uow: UnitOfWork, records: list[Any]) -> list[Inbound[Any]]:
        decoded: list[Inbound[Any]] = []
        # Records that came without a trace id (ad servers set none) share one for the batch:
        # the batch is the unit of work that handles them, and a new id per record cost 10% of
        # the spend path's time in a profile.
        batch_trace_id = new_trace_id()
        for record in records:
            headers = headers_to_dict(record.headers)
            subscription = self._route(record.topic, headers.get(HEADER_EVENT_TYPE))
            if subscription is None:
                # Another event type on a shared topic, which this service does not act on.
                MESSAGES_HANDLED.labels(self._group_id, record.topic, "ignored").inc()
                continue
            try:
                message = decode(subscription.model, record.value)
            except DecodeError as error:
                self._dead_letter(uow, record, headers, error.reason)
                continue
            event_id = headers.get(HEADER_EVENT_ID) or getattr(message, "event_id", None)
            decoded.append(
                Inbound(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key.decode("utf-8", errors="replace") if record.key is not None else None,
                    headers=headers,
                    message=message,
                    event_id=event_id or f"{record.topic}:{record.partition}:{record.offset}",
                    trace_id=headers.get(HEADER_TRACE_ID) or batch_trace_id,
                )
            )
        return decoded

    def _route(self, topic: str, event_type: str | None) -> Subscription | None:
        """The subscription for a record: by its `event-type` header, or the topic's only
        subscription when the producer (an ad server) sets no header."""
        subscriptions = self._subscriptions[topic]
        if event_type is None:
            return subscriptions[0] if len(subscriptions) == 1 else None
        for subscription in subscriptions:
            if subscription.model.MESSAGE_TYPE == event_type:
                return subscription
        return None

    def _dead_letter(self, uow: UnitOfWork, record: Any, headers: dict[str, str], reason: str) -> None:
        log.warning(
            "record_dead_lettered", topic=record.topic, partition=record.partition, offset=record.offset, reason=reason
        )
        uow.dead_letter(
            topic=self._subscriptions[record.topic][0].dlq,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            group_id=self._group_id,
            key=record.key,
            value=record.value,
            headers=headers,
            reason=reason,
        )
        MESSAGES_HANDLED.labels(self._group_id, record.topic, "dead_lettered").inc()

    async def _drop_applied(self, conn: asyncpg.Connection, decoded: list[Inbound[Any]]) -> list[Inbound[Any]]:
        """Keep the first record of each event id that this group has not applied before."""
        candidates = [inbound for inbound in decoded if self._dedupes(inbound)]
        if not candidates:
            return decoded
        rows = await conn.fetch(
            """insert into processed_events (group_id, topic, event_id)
               select $1, t, e from unnest($2::text[], $3::text[]) as v(t, e)
               on conflict do nothing
               returning topic, event_id""",
            self._group_id,
            [inbound.topic for inbound in candidates],
            [inbound.event_id for inbound in candidates],
        )
        new_ids = {(row["topic"], row["event_id"]) for row in rows}
        accepted: list[Inbound[Any]] = []
        for inbound in decoded:
            if not self._dedupes(inbound):
                accepted.append(inbound)
                continue
            identity = (inbound.topic, inbound.event_id)
            if identity in new_ids:
                new_ids.discard(identity)
                accepted.append(inbound)
            else:
                MESSAGES_HANDLED.labels(self._group_id, inbound.topic, "duplicate").inc()
        return accepted

    def _dedupes(self, inbound: Inbound[Any]) -> bool:
        return all(subscription.dedupe_by_event_id for subscription in self._subscriptions[inbound.topic])

    async def _commit_offsets(self, next_offsets: dict[TopicPartition, int]) -> None:
        owned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in next_offsets.items() if tp in owned}
        if offsets:
            try:
                await self._consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError, KafkaError) as error:
                # The database already holds the position, so nothing is lost or doubled: the
                # next owner of the partition seeks to the stored position.
                log.warning("offset_commit_failed", error=repr(error))
        for tp, offset in next_offsets.items():
            highwater = self._consumer.highwater(tp) if tp in owned else None
            if highwater is not None:
                CONSUMER_LAG.labels(self._group_id, tp.topic, str(tp.partition)).set(max(highwater - offset, 0))

    async def stored_positions(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """select p.topic, p.partition, p.next_offset from consumer_positions p
                   join unnest($2::text[], $3::int[]) as v(t, n) on p.topic = v.t and p.partition = v.n
                   where p.group_id = $1""",
                self._group_id,
                [tp.topic for tp in partitions],
                [tp.partition for tp in partitions],
            )
        return {TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(tp, offset)


class _SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: TransactionalConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Nothing to flush: every applied batch is already committed in the database.
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            return
        positions = await self._owner.stored_positions(list(assigned))
        for tp, offset in positions.items():
            self._owner.seek(tp, offset)
        log.info(
            "partitions_assigned",
            group=self._owner.group_id,
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
        )


async def run_until_cancelled(consumer: TransactionalConsumer) -> None:
    await consumer.start()
    try:
        await consumer.run()
    except asyncio.CancelledError:
        raise
    finally:
        await consumer.stop()
