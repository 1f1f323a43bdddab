"""The outbox: outgoing events are rows written in the same transaction as their cause, and a
relay publishes them afterwards. There is never a dual write (commit, then publish separately).

A crash after the commit and before the publish loses nothing: the rows are still there and the
relay publishes them when it runs again. A crash after the publish and before the rows are
deleted publishes them a second time with the same event id, and consumers drop the duplicate.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
from aiokafka import AIOKafkaProducer

from adledger_libs.db import checked_schema
from adledger_libs.events import Envelope, Message, encode
from adledger_libs.logs import current_trace_id, get_logger, new_trace_id
from adledger_libs.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED

log = get_logger(__name__)

HEADER_DLQ_REASON = "dlq-reason"
HEADER_DLQ_TOPIC = "dlq-topic"
HEADER_DLQ_PARTITION = "dlq-partition"
HEADER_DLQ_OFFSET = "dlq-offset"
HEADER_DLQ_GROUP = "dlq-consumer-group"
HEADER_DLQ_FAILED_AT = "dlq-failed-at"

_COLUMNS = ("event_id", "topic", "key", "value", "headers")


@dataclass(frozen=True)
class OutboxRow:
    event_id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def record(self) -> tuple[Any, ...]:
        return (
            self.event_id,
            self.topic,
            self.key,
            self.value,
            json.dumps([[name, value.decode("utf-8", errors="replace")] for name, value in self.headers]),
        )


class UnitOfWork:
    """One database transaction: the effects (through `conn`) and the events they cause.

    Events recorded with `publish` or `dead_letter` are written to the outbox when the unit of
    work commits, in the same transaction; if anything raises, nothing is written at all.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._rows: list[OutboxRow] = []
        self._after_commit: list[Callable[[], None]] = []
        self._before_commit: list[Callable[[], Awaitable[None]]] = []
        self._dead_lettered: list[tuple[str, str]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this unit of work has committed, never if it rolls back.

        For state a handler keeps in memory beside the database: it must change only when the
        transaction that justified the change is durable. A callback registered inside a
        savepoint that rolls back is dropped with the savepoint's writes.
        """
        self._after_commit.append(callback)

    def before_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` at the end of this unit of work, inside its transaction, before the
        outbox rows are written: it may still write and publish (issue 14: the spend consumer
        re-publishes, from the database, the keys an earlier rolled-back attempt announced early).
        A callback registered inside a savepoint that rolls back is dropped with its writes."""
        self._before_commit.append(callback)

    def committed(self) -> None:
        """Called by `unit_of_work` after the commit: runs the after-commit callbacks in order."""
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    @property
    def dead_lettered_events(self) -> list[tuple[str, str]]:
        """(source topic, event id) of every record dead-lettered in this unit of work with its event id."""
        return list(self._dead_lettered)

    def publish(
        self,
        message: Message,
        *,
        topic: str,
        key: str | None,
        trace_id: str | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        envelope = encode(message, key=key, trace_id=trace_id or current_trace_id() or new_trace_id(), event_id=event_id)
        self._rows.append(OutboxRow(envelope.event_id, topic, envelope.key, envelope.value, envelope.headers))
        return envelope

    def dead_letter(
        self,
        *,
        topic: str,
        source_topic: str,
        partition: int,
        offset: int,
        group_id: str,
        key: bytes | None,
        value: bytes | None,
        headers: Mapping[str, str],
        reason: str,
        failed_at: datetime | None = None,
        event_id: str | None = None,
    ) -> None:
        """Send the original record, untouched, to the dead-letter topic with the reason in a header.

        `event_id` names the record's event id when it had one: the consumer then does not count
        that id as applied, so the same event sent again (or replayed from the dead-letter topic
        by an operator once the cause is fixed) is applied once.
        """
        if event_id is not None:
            self._dead_lettered.append((source_topic, event_id))
        extra = {
            HEADER_DLQ_REASON: reason[:1000],
            HEADER_DLQ_TOPIC: source_topic,
            HEADER_DLQ_PARTITION: str(partition),
            HEADER_DLQ_OFFSET: str(offset),
            HEADER_DLQ_GROUP: group_id,
            HEADER_DLQ_FAILED_AT: (failed_at or datetime.now(UTC)).isoformat(),
        }
        merged = {**{k: v for k, v in headers.items() if not k.startswith("dlq-")}, **extra}
        self._rows.append(
            OutboxRow(
                event_id=f"dlq:{source_topic}:{partition}:{offset}",
                topic=topic,
                key=key,
                value=value or b"",
                headers=tuple((name, text.encode()) for name, text in merged.items()),
            )
        )

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: if the block raises, its writes and the events it recorded are
        undone, and the rest of the unit of work carries on (one bad message in a batch)."""
        recorded = (len(self._rows), len(self._after_commit), len(self._dead_lettered), len(self._before_commit))
        try:
            async with self.conn.transaction():
                yield
        except BaseException:
            del self._rows[recorded[0]:]
            del self._after_commit[recorded[1]:]
            del self._dead_lettered[recorded[2]:]
            del self._before_commit[recorded[3]:]
            raise

    @property
    def pending_events(self) -> int:
        return len(self._rows)

    async def flush(self) -> None:
        """Run the before-commit callbacks, then write the outbox rows (just before the commit)."""
        while self._before_commit:
            callbacks, self._before_commit = self._before_commit, []
            for callback in callbacks:
                await callback()
        if not self._rows:
            return
        if len(self._rows) < 8:
            await self.conn.executemany(
                "insert into outbox (event_id, topic, key, value, headers) values ($1, $2, $3, $4, $5)",
                [row.record() for row in self._rows],
            )
        else:
            schema = await self.conn.fetchval("select current_schema()")
            await self.conn.copy_records_to_table(
                "outbox", records=[row.record() for row in self._rows], columns=_COLUMNS, schema_name=schema
            )
        self._rows.clear()


@asynccontextmanager
async def unit_of_work(pool: asyncpg.Pool, relay: OutboxRelay | None = None) -> AsyncIterator[UnitOfWork]:
    """Open a transaction; commit it with the outbox rows when the block ends without error."""
    async with pool.acquire() as conn:
        uow = UnitOfWork(conn)
        async with conn.transaction():
            yield uow
            await uow.flush()
    uow.committed()
    if relay is not None:
        relay.wake()


class OutboxRelay:
    """Publishes outbox rows in id order and deletes them once Kafka acknowledged them.

    One relay per schema publishes at a time (an advisory lock), so events keep their order
    even when several instances of a service run. A notification from the outbox trigger, or a
    `wake()` from this process, starts a round at once; a poll interval is the safety net.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        schema: str,
        batch_size: int = 2000,
        poll_interval_s: float = 0.5,
        after_publish: Callable[[list[int]], Awaitable[None]] | None = None,
        sign: Callable[[str, bytes | None, bytes, dict[str, str]], list[tuple[str, bytes]]] | None = None,
    ) -> None:
        """`sign(topic, key, value, headers)` gives the headers to add to a record as it leaves
        (the producing service's signature on records other services act on, issue 12)."""
        self._pool = pool
        self._sign = sign
        self._producer = producer
        self._schema = checked_schema(schema)
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._wakeup = asyncio.Event()
        # A test seam: called after Kafka acknowledged a batch and before the rows are deleted,
        # so a test can crash the relay exactly there.
        self._after_publish = after_publish
        self._listener: asyncpg.Connection | None = None
        # The age of the oldest unpublished row at the relay's last round, and when that was (monotonic):
        # the gauge adds the time since, so an outbox that stopped draining shows its real age.
        self._oldest: tuple[float, float] | None = None
        OUTBOX_OLDEST_AGE.labels(self._schema).set_function(self._oldest_age_s)

    @property
    def channel(self) -> str:
        return f"adledger_outbox_{self._schema}"

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Publish until cancelled."""
        await self._listen()
        try:
            while True:
                published = await self.publish_pending()
                if published == 0:
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)
                    except TimeoutError:
                        pass
                    self._wakeup.clear()
        finally:
            await self._unlisten()

    async def publish_pending(self) -> int:
        """One round: publish up to one batch. Returns how many rows were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchval("select pg_try_advisory_xact_lock(hashtext($1))", self.channel)
            if not locked:
                # Another instance relays this schema and reports the outbox's age.
                self._oldest = None
                return 0
            rows = await conn.fetch(
                "select id, topic, key, value, headers,"
                " extract(epoch from clock_timestamp() - created_at)::float8 as age_s"
                f" from {self._schema}.outbox order by id limit $1",
                self._batch_size,
            )
            self._oldest = (max(row["age_s"] for row in rows), time.monotonic()) if rows else None
            if not rows:
                return 0
            futures = []
            for row in rows:
                headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
                if self._sign is not None:
                    headers += self._sign(row["topic"], row["key"], row["value"], dict(json.loads(row["headers"])))
                futures.append(await self._producer.send(row["topic"], value=row["value"], key=row["key"], headers=headers))
            await asyncio.gather(*futures)
            ids = [row["id"] for row in rows]
            if self._after_publish is not None:
                await self._after_publish(ids)
            await conn.execute(f"delete from {self._schema}.outbox where id = any($1::bigint[])", ids)
        OUTBOX_PUBLISHED.labels(self._schema).inc(len(rows))
        return len(rows)

    async def _listen(self) -> None:
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(self.channel, self._notified)

    async def _unlisten(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await listener.remove_listener(self.channel, self._notified)
            except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError) as error:
                # The connection is already gone (the database restarted or ended it): there is
                # nothing left to unlisten, and the error or cancellation that is ending the relay
                # must not be replaced by this one.
                log.warning("outbox_unlisten_failed", schema=self._schema, error=repr(error))
            finally:
                await self._pool.release(listener)

    def _notified(self, *_: object) -> None:
        self._wakeup.set()

    def _oldest_age_s(self) -> float:
        if self._oldest is None:
            return 0.0
        age_s, seen_at = self._oldest
        return max(age_s, 0.0) + time.monotonic() - seen_at


@dataclass(frozen=True)
class OutboxBacklog:
    """What a schema's outbox holds: every row, and those older than the limit asked about."""

    schema: str
    rows: int
    stale_rows: int
    oldest_created_at: datetime | None
    #: The database's clock when it was read; rows are stamped by it (`created_at default now()`).
    read_at: datetime


async def outbox_backlog(conn: asyncpg.Connection, schema: str, older_than: timedelta) -> OutboxBacklog | None:
    """How far behind a schema's outbox relay is (None when the schema has no outbox). A healthy
    relay publishes within milliseconds, so a row older than a minute means a stuck relay or an
    unreachable broker: events that subscribers have not seen."""
    schema = checked_schema(schema)
    if await conn.fetchval("select to_regclass($1)", f"{schema}.outbox") is None:
        return None
    row = await conn.fetchrow(
        f"""select count(*) as rows, count(*) filter (where created_at < now() - $1::interval) as stale_rows,
                   min(created_at) as oldest_created_at, now() as read_at
            from {schema}.outbox""",
        older_than,
    )
    assert row is not None
    return OutboxBacklog(schema, int(row["rows"]), int(row["stale_rows"]), row["oldest_created_at"], row["read_at"])


class StoredAnswer(NamedTuple):
    status_code: int
    response: Any


async def remembered_answer(uow: UnitOfWork, *, scope: str, key: str, fingerprint: str) -> StoredAnswer | None:
    """The answer already given to this idempotency key, if any (rule M5).

    Takes a transaction-level advisory lock on the key first, so two concurrent requests with the
    same key serialise: the second waits, then finds the first's answer. The same key with a
    different request is a caller's mistake and raises `IdempotencyConflict`.
    """
    await uow.conn.execute("select pg_advisory_xact_lock(hashtext($1))", f"idempotency:{scope}:{key}")
    row = await uow.conn.fetchrow(
        "select fingerprint, status_code, response from idempotent_requests where scope = $1 and idempotency_key = $2",
        scope,
        key,
    )
    if row is None:
        return None
    if row["fingerprint"] != fingerprint:
        raise IdempotencyConflict(scope, key)
    return StoredAnswer(row["status_code"], row["response"])


async def remember_answer(
    uow: UnitOfWork, *, scope: str, key: str, fingerprint: str, status_code: int, response: Any
) -> None:
    await uow.conn.execute(
        "insert into idempotent_requests (scope, idempotency_key, fingerprint, status_code, response)"
        " values ($1, $2, $3, $4, $5)",
        scope,
        key,
        fingerprint,
        status_code,
        response,
    )


class IdempotencyConflict(Exception):
    """The idempotency key was used before for a different request."""

    def __init__(self, scope: str, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request ({scope})")
        self.scope = scope
        self.key = key
