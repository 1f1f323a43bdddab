"""The exactly-once consumer every service uses.

For each batch read from Kafka, in ONE PostgreSQL transaction:
1. lock the group's stored positions of the batch's partitions, and skip every record below
   them (a redelivery after a crash or a rebalance);
2. decode each record into its typed event at the edge; a record that fails goes to the
   dead-letter topic (through the outbox) with the reason, and the stream goes on;
3. drop records whose event id was already applied (a re-sent event, or an outbox re-publish);
4. run the handlers, which write their effects and record outgoing events, topic by topic in
   the order of the subscriptions, and within a topic in the order of the records;
5. write the outbox rows and the new positions.
Only after the commit are the offsets committed to Kafka: the database is the truth, Kafka's
committed offsets follow it for tooling and for where to start. On assignment the consumer
seeks to the stored positions.

A record that decodes but that a handler cannot apply because of what it holds (a refusal of a
rule or of the ledger, `Refusal`; a value the database rejects, `asyncpg.DataError`; a model its
values do not fit, `pydantic.ValidationError`; or a handler's explicit `RecordRejected`) is a
record fault, not a bug: the batch's transaction is rolled back and the batch applied again in
isolation, each handler's records split in halves inside savepoints until the faulty record is
alone; it is dead-lettered with the reason and the rest is applied. One poison record can never
make a consumer loop. Any other exception is a bug: the service stops loudly.
A record that cannot even be read off the wire (aiokafka refuses a header key that is not UTF-8)
is found by reading its partition one record at a time, dead-lettered by position, and skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg
import pydantic
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, CorruptRecordException, IllegalStateError, KafkaError

from adledger_contracts.topics import dead_letter_topic
from adledger_libs.events import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_TRACE_ID,
    DecodeError,
    Message,
    decode,
    headers_to_dict,
    is_identifier,
)
from adledger_libs.kafka import KafkaTarget, client_options
from adledger_libs.logs import get_logger, new_trace_id
from adledger_libs.metrics import BATCH_RECORDS, BATCH_SECONDS, CONSUMER_LAG, MESSAGES_HANDLED
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work
from adledger_libs.refusals import Refusal

log = get_logger(__name__)

M = TypeVar("M", bound=Message)

#: How often a batch is tried when PostgreSQL aborts it for a deadlock or serialisation failure.
_TRANSIENT_ATTEMPTS = 5
#: A trace id taken from a record's header is cut to this length (it only names logs).
_TRACE_ID_LENGTH = 128


class RecordRejected(Exception):
    """Raised by a handler that cannot apply a record because of what the record holds.

    The consumer dead-letters the record with `reason` (found by isolating the batch) and goes on.
    A handler that knows which record it refuses can also call `reject(uow, inbound, reason)`
    and go on itself, which costs nothing extra.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: What a handler may raise because of a record's own values: dead-lettered, never a crash. A check
#: constraint is an invariant of a table that the record's values break once they decoded (a negative
#: amount a looser contract let through); isolating the batch names the one record, so it is that
#: record's fault, and one poison record must not stop the stream (S5). Unique and foreign-key
#: violations stay crashes: they say more about the code or a race than about one record.
RECORD_FAULTS: tuple[type[BaseException], ...] = (
    RecordRejected,
    Refusal,
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.CheckViolationError,
    pydantic.ValidationError,
)


def fault_reason(error: BaseException) -> str:
    """The dead-letter reason of a record fault: what refused it, in words."""
    if isinstance(error, RecordRejected):
        return error.reason
    if isinstance(error, pydantic.ValidationError):
        details = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or '(root)'}: {issue['msg']}"
            for issue in error.errors(include_url=False)
        )
        return f"the record's values do not fit {error.title}: {details}"
    return f"{type(error).__name__}: {error}"


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
    #: The record as it came, byte for byte, so a dead letter keeps it exactly.
    raw_key: bytes | None = None
    raw_value: bytes | None = None
    #: Where a handler's `reject` sends it, and the group that read it.
    dead_letter_topic: str = ""
    group_id: str = ""


def reject(uow: UnitOfWork, inbound: Inbound[Any], reason: str) -> None:
    """Dead-letter one record a handler refuses (an unknown account, another currency), with the
    reason; the handler goes on with the rest of its batch. Nothing of the record is applied, and
    its event id is not counted as applied, so the same event sent again, or replayed by an
    operator after the cause is fixed, is applied once."""
    raw_key = inbound.raw_key
    if raw_key is None and inbound.key is not None:
        raw_key = inbound.key.encode()
    value = inbound.raw_value
    if value is None:
        value = inbound.message.model_dump_json().encode()
    uow.dead_letter(
        topic=inbound.dead_letter_topic or dead_letter_topic(inbound.topic),
        source_topic=inbound.topic,
        partition=inbound.partition,
        offset=inbound.offset,
        group_id=inbound.group_id,
        key=raw_key,
        value=value,
        headers=inbound.headers,
        reason=reason,
        event_id=inbound.event_id,
    )
    MESSAGES_HANDLED.labels(inbound.group_id, inbound.topic, "dead_lettered").inc()


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
    #: A compiled decoder of a fixed schema (issue 14: msgspec for the ad servers' spend), tried
    #: first: it returns the message as an object of `fast_type` with the model's fields, or None
    #: when it cannot vouch for the record; the record is then decoded by `model`, which accepts
    #: it or gives the dead-letter reason. So the fast path may only accept what `model` accepts,
    #: with the same values, and the reasons of the dead-letter path never change.
    fast_decode: Callable[[bytes], Any] | None = None
    fast_type: type | None = None
    #: Run when partitions of `topic` are assigned, before any of their records is read, in its own
    #: unit of work, with those partitions (issue 14: the spend consumer re-publishes from the
    #: database what an attempt that crashed before its commit announced early).
    on_assigned: Callable[[UnitOfWork, list[TopicPartition]], Awaitable[None]] | None = None

    @property
    def dlq(self) -> str:
        return self.dead_letter_topic or dead_letter_topic(self.topic)


class TransactionalConsumer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        bootstrap_servers: KafkaTarget,
        group_id: str,
        subscriptions: Sequence[Subscription],
        relay: OutboxRelay | None = None,
        max_batch_records: int = 2000,
        max_batch_seconds: float = 0.0,
        fetch_timeout_ms: int = 200,
        client_id: str | None = None,
        check_signature: Callable[[Message, dict[str, str], str, bytes | None, bytes], None] | None = None,
    ) -> None:
        """`check_signature(message, headers, topic, key, value)` raises with the reason when a
        message whose type must be signed (`SIGNED_BY`) is not signed by a service that may send it
        (issue 12); the record is then dead-lettered unread."""
        self._pool = pool
        self._check_signature = check_signature
        self._group_id = group_id
        self._subscriptions: dict[str, list[Subscription]] = {}
        for subscription in subscriptions:
            same_topic = self._subscriptions.setdefault(subscription.topic, [])
            if any(other.model is subscription.model for other in same_topic):
                raise ValueError(f"two subscriptions to {subscription.model.__name__} on {subscription.topic}")
            same_topic.append(subscription)
        self._relay = relay
        self._max_batch_records = max_batch_records
        #: The cap by time (issue 14): `_batch_records` follows how long batches take to apply.
        self._max_batch_seconds = max_batch_seconds
        self._batch_records = max_batch_records
        self._fetch_timeout_ms = fetch_timeout_ms
        self._consumer = AIOKafkaConsumer(
            **client_options(bootstrap_servers),
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
        try:
            data = await self._consumer.getmany(timeout_ms=self._fetch_timeout_ms, max_records=self._batch_records)
        except (CorruptRecordException, UnicodeDecodeError) as error:
            # aiokafka cannot read a record off the wire (a header key that is not UTF-8): it
            # raises for the whole fetch, every time, so the record must be found and skipped.
            return await self._skip_unreadable(error)
        if not data:
            return 0
        return await self._apply_batch(data)

    async def _apply_batch(self, data: dict[TopicPartition, list[Any]]) -> int:
        records = sum(len(partition_records) for partition_records in data.values())
        started = time.perf_counter()
        next_offsets = await self._apply_with_retry(data)
        elapsed_s = time.perf_counter() - started
        BATCH_SECONDS.labels(self._group_id).observe(elapsed_s)
        self._batch_records = next_batch_records(
            self._batch_records, records, elapsed_s, self._max_batch_seconds, self._max_batch_records
        )
        BATCH_RECORDS.labels(self._group_id).observe(records)
        await self._commit_offsets(next_offsets)
        return records

    async def _apply_with_retry(
        self, data: dict[TopicPartition, list[Any]], unreadable: Sequence[tuple[TopicPartition, int, str]] = ()
    ) -> dict[TopicPartition, int]:
        """Apply the batch; when PostgreSQL aborts it as a deadlock victim or a serialisation
        failure, the whole transaction was rolled back, so applying it again is safe. When a
        handler raises a record fault, the batch is applied again in isolation (see the module)."""
        isolate = False
        for attempt in range(1, _TRANSIENT_ATTEMPTS + 1):
            try:
                return await self._apply(data, isolate=isolate, unreadable=unreadable)
            except (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError) as error:
                if attempt == _TRANSIENT_ATTEMPTS:
                    raise
                log.warning("batch_retried", group=self._group_id, attempt=attempt, error=repr(error))
                await asyncio.sleep(0.01 * attempt)
            except RECORD_FAULTS as error:
                if isolate:
                    # Isolation runs every handler call in a savepoint and catches these; one
                    # that escapes came from outside a handler, which is a bug.
                    raise
                log.warning("batch_isolating_record_fault", group=self._group_id, error=fault_reason(error)[:500])
                isolate = True
        raise AssertionError("unreachable")

    async def _apply(
        self,
        data: dict[TopicPartition, list[Any]],
        *,
        isolate: bool = False,
        unreadable: Sequence[tuple[TopicPartition, int, str]] = (),
    ) -> dict[TopicPartition, int]:
        # A fixed order of partitions means a fixed order of row locks: no deadlock between instances.
        partitions = sorted({*data, *(tp for tp, _, _ in unreadable)}, key=lambda tp: (tp.topic, tp.partition))
        next_offsets = {tp: data[tp][-1].offset + 1 for tp in partitions if data.get(tp)}
        for tp, offset, _ in unreadable:
            next_offsets[tp] = max(next_offsets.get(tp, 0), offset + 1)
        async with unit_of_work(self._pool, self._relay) as uow:
            stored = await self._lock_positions(uow.conn, partitions)
            fresh: list[Any] = []
            for tp in partitions:
                for record in data.get(tp, ()):
                    if record.offset >= stored[tp]:
                        fresh.append(record)
                    else:
                        MESSAGES_HANDLED.labels(self._group_id, tp.topic, "redelivered").inc()
            for tp, offset, reason in unreadable:
                if offset >= stored[tp]:
                    self._dead_letter_unreadable(uow, tp, offset, reason)
            decoded = self._decode(uow, fresh)
            accepted = await self._drop_applied(uow.conn, decoded)
            for subscription, run in self._runs(accepted):
                if isolate:
                    await self._handle_isolated(uow, subscription, run)
                else:
                    await subscription.handler(uow, run)
                MESSAGES_HANDLED.labels(self._group_id, subscription.topic, "applied").inc(len(run))
            await self._forget_dead_lettered(uow)
            await uow.conn.execute(
                """update consumer_positions p set next_offset = v.next_offset, updated_at = now()
                   from unnest($2::text[], $3::int[], $4::bigint[]) as v(topic, partition, next_offset)
                   where p.group_id = $1 and p.topic = v.topic and p.partition = v.partition
                     and v.next_offset > p.next_offset""",
                self._group_id,
                [tp.topic for tp in next_offsets],
                [tp.partition for tp in next_offsets],
                list(next_offsets.values()),
            )
        return next_offsets

    def _runs(self, accepted: list[Inbound[Any]]) -> list[tuple[Subscription, list[Inbound[Any]]]]:
        """The handler calls of a batch: topic by topic in the subscriptions' order, and within a
        topic in the records' own order (partition by partition, by offset), consecutive records of
        one message type in one call. So a command is never applied before an earlier one of
        another type on its partition (a PlaceHold before the ResolveHold that preceded it)."""
        by_topic: dict[str, list[Inbound[Any]]] = {}
        for inbound in accepted:
            by_topic.setdefault(inbound.topic, []).append(inbound)
        runs: list[tuple[Subscription, list[Inbound[Any]]]] = []
        for topic, subscriptions in self._subscriptions.items():
            by_model: dict[type, Subscription] = {}
            for subscription in subscriptions:
                by_model[subscription.model] = subscription
                if subscription.fast_type is not None:
                    by_model[subscription.fast_type] = subscription
            for inbound in by_topic.get(topic, ()):
                subscription = by_model[type(inbound.message)]
                if runs and runs[-1][0] is subscription:
                    runs[-1][1].append(inbound)
                else:
                    runs.append((subscription, [inbound]))
        return runs

    async def _handle_isolated(self, uow: UnitOfWork, subscription: Subscription, run: list[Inbound[Any]]) -> None:
        """Apply `run` in a savepoint; on a record fault, undo it and apply each half the same way,
        until the record at fault is alone: it is dead-lettered with the reason, the rest applied."""
        try:
            async with uow.savepoint():
                await subscription.handler(uow, run)
        except RECORD_FAULTS as error:
            if len(run) == 1:
                reason = fault_reason(error)
                log.warning(
                    "record_fault_dead_lettered", topic=run[0].topic, partition=run[0].partition,
                    offset=run[0].offset, reason=reason[:500],
                )
                reject(uow, run[0], reason)
                return
            middle = len(run) // 2
            await self._handle_isolated(uow, subscription, run[:middle])
            await self._handle_isolated(uow, subscription, run[middle:])

    async def _forget_dead_lettered(self, uow: UnitOfWork) -> None:
        """A record dead-lettered by a handler was not applied: its event id must not count as
        applied, so that the same event sent again, or replayed after a fix, is applied once."""
        events = [(topic, event_id) for topic, event_id in uow.dead_lettered_events if topic in self._subscriptions]
        if events:
            await uow.conn.execute(
                """delete from processed_events p using unnest($2::text[], $3::text[]) as v(topic, event_id)
                   where p.group_id = $1 and p.topic = v.topic and p.event_id = v.event_id""",
                self._group_id,
                [topic for topic, _ in events],
                [event_id for _, event_id in events],
            )

    async def _skip_unreadable(self, error: BaseException) -> int:
        """Find the record aiokafka cannot read, apply what precedes it, dead-letter it by its
        position (its bytes cannot be had), and move past it. Partitions are read one by one, and
        the failing one a record at a time, so no good record is lost or applied twice."""
        log.warning("unreadable_record", group=self._group_id, error=repr(error)[:500])
        for tp in sorted(self._consumer.assignment(), key=lambda tp: (tp.topic, tp.partition)):
            good: list[Any] = []
            while True:
                try:
                    data = await self._consumer.getmany(tp, timeout_ms=self._fetch_timeout_ms, max_records=1)
                except (CorruptRecordException, UnicodeDecodeError) as unreadable:
                    offset = await self._consumer.position(tp)
                    reason = f"the record cannot be read: {unreadable!r}"[:1000]
                    await self._apply_with_retry({tp: good} if good else {}, unreadable=[(tp, offset, reason)])
                    self._consumer.seek(tp, offset + 1)
                    MESSAGES_HANDLED.labels(self._group_id, tp.topic, "dead_lettered").inc()
                    return len(good) + 1
                records = data.get(tp, [])
                if not records or len(good) >= self._max_batch_records:
                    break
                good.extend(records)
            if good:
                # This partition reads well: apply what was read from it, and look at the next.
                await self._apply_batch({tp: good})
        return 0

    def _dead_letter_unreadable(self, uow: UnitOfWork, tp: TopicPartition, offset: int, reason: str) -> None:
        log.warning("record_dead_lettered", topic=tp.topic, partition=tp.partition, offset=offset, reason=reason)
        uow.dead_letter(
            topic=self._subscriptions[tp.topic][0].dlq,
            source_topic=tp.topic,
            partition=tp.partition,
            offset=offset,
            group_id=self._group_id,
            key=None,
            value=None,
            headers={},
            reason=reason,
        )

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
            message = None
            if subscription.fast_decode is not None and record.value is not None:
                message = subscription.fast_decode(record.value)
            if message is None:
                try:
                    message = decode(subscription.model, record.value)
                except DecodeError as error:
                    self._dead_letter(uow, record, headers, error.reason)
                    continue
            if message.SIGNED_BY and self._check_signature is not None:
                try:
                    self._check_signature(message, headers, record.topic, record.key, record.value)
                except Exception as error:  # noqa: BLE001 - any failure of the check refuses the record
                    self._dead_letter(uow, record, headers, f"not accepted: {error}"[:1000])
                    continue
            event_id = headers.get(HEADER_EVENT_ID) or getattr(message, "event_id", None)
            if event_id is not None and not is_identifier(event_id):
                # The event id is stored for the dedupe: it is bounded like every id.
                self._dead_letter(uow, record, headers, "invalid event-id header: 1 to 128 characters, no control characters")
                continue
            decoded.append(
                Inbound(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key.decode("utf-8", errors="replace") if record.key is not None else None,
                    headers=headers,
                    message=message,
                    event_id=event_id or f"{record.topic}:{record.partition}:{record.offset}",
                    trace_id=(headers.get(HEADER_TRACE_ID) or batch_trace_id)[:_TRACE_ID_LENGTH],
                    raw_key=record.key,
                    raw_value=record.value,
                    dead_letter_topic=subscription.dlq,
                    group_id=self._group_id,
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

    async def assigned(self, assigned: list[TopicPartition]) -> None:
        """Run the subscriptions' `on_assigned` callbacks for the partitions of their topic."""
        for topic, subscriptions in sorted(self._subscriptions.items()):
            partitions = sorted((tp for tp in assigned if tp.topic == topic), key=lambda tp: tp.partition)
            for subscription in subscriptions:
                if subscription.on_assigned is not None and partitions:
                    async with unit_of_work(self._pool, self._relay) as uow:
                        await subscription.on_assigned(uow, partitions)


def next_batch_records(current: int, records: int, elapsed_s: float, max_seconds: float, max_records: int) -> int:
    """How many records the next batch may read: a batch of `records` took `elapsed_s` to apply.

    Capped by time (issue 14): a batch that took longer than `max_seconds` makes the next one
    proportionally smaller (at least an eighth of `max_records`: below that the fixed cost of a
    batch's round trips dominates and an overloaded machine would spiral into tiny batches that
    fall further behind), so a pause decided in a busy stream never waits
    behind a batch much longer than that; one that took less lets it grow by a quarter, up to
    `max_records`. A batch that was small because the stream was (caught up) says nothing about the
    cap. `max_seconds` 0: the cap is `max_records` alone."""
    if max_seconds <= 0:
        return max_records
    if elapsed_s > max_seconds and records > 0:
        return max(16, max_records // 8, min(current, int(records * max_seconds / elapsed_s)))
    if records >= current:
        return min(max_records, current + max(current // 4, 1))
    return current


class _SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: TransactionalConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Nothing to flush: every applied batch is already committed in the database.
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            return
        await self._owner.assigned(list(assigned))
        positions = await self._owner.stored_positions(list(assigned))
        for tp, offset in positions.items():
            self._owner.seek(tp, offset)
        log.info(
            "partitions_assigned",
            group=self._owner.group_id,
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
        )


async def prune_processed_events(
    conn: asyncpg.Connection, group_id: str, topics: Sequence[str], before: datetime, *, limit: int = 10_000
) -> int:
    """Forget the event ids this group applied from `topics` before `before` (at most `limit` of
    them per call, so one call never holds a long transaction): past the topic's retention no
    redelivery can bring them back, and an ad server re-sends within it (issue 14). `before` comes
    from the injected clock (T1). Returns how many were forgotten."""
    rows = await conn.fetch(
        """delete from processed_events p
           where p.ctid = any(array(
               select ctid from processed_events
               where group_id = $1 and topic = any($2::text[]) and processed_at < $3
               limit $4))
           returning 1""",
        group_id,
        list(topics),
        before,
        limit,
    )
    return len(rows)


async def run_until_cancelled(consumer: TransactionalConsumer) -> None:
    await consumer.start()
    try:
        await consumer.run()
    except asyncio.CancelledError:
        raise
    finally:
        await consumer.stop()
