"""Reading whole topics without a consumer group: the cold start, then following them live.

Every ad server needs every partition of the delivery and balance topics (a consumer group would
split them between instances), so the reader assigns all partitions itself and commits nothing.
A topic read from the beginning counts for readiness: the reader is ready once its position on
every partition reached the end offset that partition had when the reader started, so what was
published before the start is known before `start()` returns. A topic followed from its end is
positioned at its end offsets before the cold start begins, so nothing published during the cold
start is missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("adledger_client")

#: How long `getmany` waits when nothing arrives; records are returned as soon as they are fetched.
_POLL_TIMEOUT_MS = 500
#: Back-off after a Kafka error the client did not handle itself (the broker is away, say).
_FIRST_BACKOFF_S = 0.1
_LAST_BACKOFF_S = 5.0
#: Each step of stopping is bounded, so a stop never hangs on a broker that is gone.
_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record, before it is typed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes]
    timestamp_ms: int | None


@dataclass(frozen=True)
class Stream:
    """A topic to read: from the beginning (it counts for readiness) or from its end."""

    topic: str
    from_beginning: bool


#: Called with the records of one fetch, each partition's in offset order, and whether the reader is ready.
Handler = Callable[[Sequence[RawRecord], bool], None]


class NotReadyError(TimeoutError):
    """The reader did not finish its cold start in time: a topic is missing, or the broker is away."""


class TopicReader:
    """Reads `streams` in one background task and hands each fetch to `handle`."""

    def __init__(
        self,
        bootstrap_servers: str,
        streams: Sequence[Stream],
        handle: Handler,
        *,
        client_id: str,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._streams = tuple(streams)
        self._handle = handle
        self._client_id = client_id
        self._kafka_options = dict(kafka_options or {})
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._catching_up: dict[Any, int] = {}
        self._ready = asyncio.Event()
        self._failure: BaseException | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the reader, if one did (a bug in a handler, not a Kafka outage)."""
        return self._failure

    @property
    def following(self) -> bool:
        """Whether the reader is running: started, not stopped and not failed."""
        return self._task is not None and not self._task.done()

    async def start(self, ready_timeout_s: float) -> None:
        """Start reading and return once the cold start is done.

        Raises:
            NotReadyError: a topic has no partitions known to the broker, or the cold start did not
                reach the end offsets within `ready_timeout_s`; the reader is stopped.
        """
        if self._consumer is not None:
            raise RuntimeError("the reader was already started")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_timeout_s
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            # A record is applied only once it is committed, should a producer ever be transactional.
            isolation_level="read_committed",
            # A position that fell out of retention starts again from the oldest record kept.
            auto_offset_reset="earliest",
            **{
                # A fetch that finds nothing waits this long on the broker, and the requests queued
                # behind it on the connection (the cold start's offset look-ups) wait with it; a
                # record that arrives meanwhile is returned at once, whatever the wait.
                "fetch_max_wait_ms": 100,
                **self._kafka_options,
            },
        )
        try:
            await asyncio.wait_for(self._consumer.start(), max(deadline - loop.time(), 0.001))
            partitions = await self._partitions(deadline)
            self._consumer.assign([tp for tps in partitions.values() for tp in tps])
            # The followed topics first: a record published while the cold start runs is then read.
            for stream in self._streams:
                if not stream.from_beginning:
                    for tp, offset in (await self._consumer.end_offsets(partitions[stream.topic])).items():
                        self._consumer.seek(tp, offset)
            cold = [tp for stream in self._streams if stream.from_beginning for tp in partitions[stream.topic]]
            if cold:
                await self._consumer.seek_to_beginning(*cold)
                self._catching_up = dict(await self._consumer.end_offsets(cold))
            await self._caught_up()
        except BaseException as error:
            await self.stop()
            if isinstance(error, TimeoutError | KafkaError):
                raise NotReadyError(f"could not start reading {self._topic_names()}: {error!r}") from error
            raise
        self._task = asyncio.create_task(self._run(), name=f"adledger-client-reader-{self._client_id}")
        remaining_s = deadline - loop.time()
        try:
            await asyncio.wait_for(self._wait_ready(), max(remaining_s, 0.001))
        except TimeoutError:
            await self.stop()
            raise NotReadyError(
                f"the cold start of {self._topic_names()} did not reach the end within {ready_timeout_s:.0f}s"
            ) from None

    async def stop(self) -> None:
        """Stop reading (idempotent, bounded)."""
        self._ready.clear()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=_STOP_TIMEOUT_S)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await asyncio.wait_for(consumer.stop(), _STOP_TIMEOUT_S)
            except (TimeoutError, KafkaError) as error:
                log.warning("adledger_client: the Kafka consumer did not stop cleanly: %r", error)

    def _topic_names(self) -> list[str]:
        return [stream.topic for stream in self._streams]

    async def _partitions(self, deadline: float) -> dict[str, list[Any]]:
        """Every partition of every stream's topic, once the broker's metadata names them."""
        loop = asyncio.get_running_loop()
        # Every topic has a partition 0; assigning it makes the client fetch the topics' metadata
        # (the consumer's public way to learn a topic's partitions without a group).
        self._consumer.assign([TopicPartition(stream.topic, 0) for stream in self._streams])
        while True:
            found = {stream.topic: self._consumer.partitions_for_topic(stream.topic) for stream in self._streams}
            missing = [name for name, numbers in found.items() if not numbers]
            if not missing:
                return {name: [TopicPartition(name, number) for number in sorted(numbers)] for name, numbers in found.items()}
            if loop.time() > deadline:
                raise TimeoutError(f"no partitions known for {missing} (do the topics exist?)")
            await asyncio.sleep(0.05)

    async def _wait_ready(self) -> None:
        while not self._ready.is_set():
            task = self._task
            if task is None or task.done():
                failure = self._failure or RuntimeError("the reader stopped")
                raise NotReadyError(f"the reader stopped during its cold start: {failure!r}") from failure
            ready = asyncio.ensure_future(self._ready.wait())
            try:
                await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()

    async def _caught_up(self) -> None:
        """Drop the partitions whose position reached their end offset at the start; ready when none is left."""
        for tp, end in list(self._catching_up.items()):
            if await self._consumer.position(tp) >= end:
                del self._catching_up[tp]
        if not self._catching_up:
            self._ready.set()

    async def _run(self) -> None:
        backoff_s = _FIRST_BACKOFF_S
        try:
            while True:
                try:
                    fetched = await self._consumer.getmany(timeout_ms=_POLL_TIMEOUT_MS)
                except KafkaError as error:
                    # aiokafka retries what it can (a lost connection, a new leader) by itself;
                    # what reaches here is retried after a pause, and the gate keeps what it knows.
                    log.warning("adledger_client: reading %s failed, retrying: %r", self._topic_names(), error)
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, _LAST_BACKOFF_S)
                    continue
                backoff_s = _FIRST_BACKOFF_S
                records = [
                    RawRecord(
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        key=record.key,
                        value=record.value,
                        headers={name: value for name, value in (record.headers or ())},
                        timestamp_ms=record.timestamp,
                    )
                    for partition_records in fetched.values()
                    for record in partition_records
                ]
                if records:
                    self._handle(records, self._ready.is_set())
                if not self._ready.is_set():
                    await self._caught_up()
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            # A bug (the handlers never raise on a bad record): stop following, loudly. The gate
            # then refuses to serve rather than serve from a view that no longer moves.
            self._failure = error
            self._ready.clear()
            log.exception("adledger_client: reading %s stopped on an unexpected error", self._topic_names())
