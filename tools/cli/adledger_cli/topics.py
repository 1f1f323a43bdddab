"""Reading a topic from its beginning to the end it had when the read started, without a
consumer group (nothing is committed, no group is left behind on the broker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from adledger_libs.kafka import KafkaTarget, client_options
from adledger_cli.errors import OperatorError

#: How long the broker may take to answer at all before the command gives up and says so.
CONNECT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@asynccontextmanager
async def consumer(
    bootstrap_servers: KafkaTarget, *, client_id: str = "adledger-cli", isolation_level: str = "read_committed"
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer without a group, started within CONNECT_TIMEOUT_S or an OperatorError. It reads
    committed records only, as the services do, unless told otherwise."""
    client = AIOKafkaConsumer(
        **client_options(bootstrap_servers),
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000),
    )
    try:
        await asyncio.wait_for(client.start(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError, OSError) as error:
        await client.stop()
        raise OperatorError(f"Kafka at {bootstrap_servers} did not answer: {error!r}") from error
    try:
        yield client
    finally:
        await client.stop()


async def topic_partitions(bootstrap_servers: KafkaTarget, topics: Sequence[str]) -> dict[str, list[int]]:
    """The partitions of each of `topics` that exists on the broker (absent topics are left out).

    One metadata request for every topic: asking for named topics could make a broker that
    auto-creates topics create a missing one, which an operator's look must never do."""
    admin = AIOKafkaAdminClient(
        **client_options(bootstrap_servers), client_id="adledger-cli", request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
        described = await asyncio.wait_for(admin.describe_topics(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError, OSError) as error:
        raise OperatorError(f"Kafka at {bootstrap_servers} did not answer: {error!r}") from error
    finally:
        await admin.close()
    wanted = set(topics)
    return {
        item["topic"]: sorted(partition["partition"] for partition in item["partitions"])
        for item in described
        if item["topic"] in wanted and item.get("error_code", 0) == 0 and item["partitions"]
    }


@dataclass(frozen=True)
class ReadResult:
    #: The end offset of every partition read, as it was when the read started.
    ends: Mapping[TopicPartition, int]
    #: The topics asked for that do not exist on the broker (only with `missing_ok`).
    missing: tuple[str, ...]


async def read_to_end(
    bootstrap_servers: KafkaTarget,
    topics: Sequence[str],
    handle: Callable[[Record], None],
    *,
    missing_ok: bool = False,
    timeout_s: float = 120.0,
) -> ReadResult:
    """Call `handle` for every record of `topics`, oldest first per partition, up to the end
    offsets read at the start, with one consumer. A topic that does not exist is an
    OperatorError, or with `missing_ok` is reported in the result. Fails after `timeout_s`."""
    existing = await topic_partitions(bootstrap_servers, topics)
    missing = [topic for topic in topics if topic not in existing]
    if missing and not missing_ok:
        raise OperatorError(f"no topic {missing[0]!r} on the broker")
    partitions = [TopicPartition(topic, number) for topic in topics for number in existing.get(topic, [])]
    if not partitions:
        return ReadResult({}, tuple(missing))
    async with consumer(bootstrap_servers) as client:
        client.assign(partitions)
        await client.seek_to_beginning(*partitions)
        ends = await client.end_offsets(partitions)
        await _read_until(client, ends, handle, timeout_s, ", ".join(topics))
        return ReadResult(ends, tuple(missing))


async def _read_until(
    client: AIOKafkaConsumer,
    ends: Mapping[TopicPartition, int],
    handle: Callable[[Record], None],
    timeout_s: float,
    topic: str,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    remaining = {tp for tp, end in ends.items() if end > 0}
    while remaining:
        for tp in list(remaining):
            # The position passes the end also over gaps: compacted records, transaction markers.
            if await client.position(tp) >= ends[tp]:
                remaining.discard(tp)
        if not remaining:
            break
        if loop.time() > deadline:
            raise OperatorError(f"{topic}: not read to its end within {timeout_s:.0f}s")
        batch = await client.getmany(*remaining, timeout_ms=200)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    handle(
                        Record(
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            timestamp_ms=record.timestamp,
                            key=record.key,
                            value=record.value,
                            headers=tuple(record.headers or ()),
                        )
                    )


class LatestPerKey:
    """A compacted topic's view: the latest value per key (a tombstone removes the key), read to
    the end, and read again to the new end when asked (the audit's settling)."""

    def __init__(self, bootstrap_servers: KafkaTarget, topic: str, *, timeout_s: float = 120.0) -> None:
        self._bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._timeout_s = timeout_s
        self.values: dict[bytes, Record] = {}
        self.records_read = 0
        self._client: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        self._stack = AsyncExitStack()
        existing = await topic_partitions(self._bootstrap_servers, [self.topic])
        if self.topic not in existing:
            raise OperatorError(f"no topic {self.topic!r} on the broker")
        self._partitions = [TopicPartition(self.topic, number) for number in existing[self.topic]]
        client = await self._stack.enter_async_context(consumer(self._bootstrap_servers))
        client.assign(self._partitions)
        await client.seek_to_beginning(*self._partitions)
        self._client = client
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    async def catch_up(self) -> None:
        """Read from where the last read stopped to the topic's current end."""
        assert self._client is not None, "use LatestPerKey as an async context manager"
        ends = await self._client.end_offsets(self._partitions)
        await _read_until(self._client, ends, self._keep, self._timeout_s, self.topic)

    def _keep(self, record: Record) -> None:
        self.records_read += 1
        if record.key is None:
            return
        if record.value is None:
            self.values.pop(record.key, None)
        else:
            self.values[record.key] = record
