"""The dead-letter topics: what is in them, and replaying chosen records to where they came from.

A dead letter is the original record, byte for byte, with headers that say why and where from
(`adledger_libs.outbox.UnitOfWork.dead_letter`): `dlq-reason`, `dlq-topic`, `dlq-partition`,
`dlq-offset`, `dlq-consumer-group`, `dlq-failed-at`.

Replay re-publishes a dead letter to its origin topic and partition with its original key, value
and headers (the `dlq-*` ones removed, a `dlq-replayed-from` added that names the dead letter),
through an idempotent producer. It is safe to repeat: a consumer drops an event id it already
applied (`processed_events`), and a record that was dead-lettered was not recorded as applied, so
after its cause is fixed the replay applies it once, and a second replay is dropped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from adledger_contracts.topics import CATALOGUE, DEAD_LETTER_SUFFIX, dead_letter_topic
from adledger_libs.kafka import KafkaTarget, make_producer
from adledger_libs.outbox import (
    HEADER_DLQ_FAILED_AT,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_REASON,
    HEADER_DLQ_TOPIC,
)
from aiokafka.errors import KafkaError

from adledger_cli.errors import OperatorError
from adledger_cli.topics import CONNECT_TIMEOUT_S, Record, read_to_end, topic_partitions

HEADER_REPLAYED_FROM = "dlq-replayed-from"
_DLQ_HEADER_PREFIX = "dlq-"


def catalogue_dead_letter_topics() -> list[str]:
    return [spec.name for spec in CATALOGUE if spec.name.endswith(DEAD_LETTER_SUFFIX)]


def dead_letter_topic_of(name: str) -> str:
    """A dead-letter topic named directly (`ads.spend.v1.dlq`) or by its origin (`ads.spend.v1`)."""
    return name if name.endswith(DEAD_LETTER_SUFFIX) else dead_letter_topic(name)


def printable(data: bytes | None, limit: int) -> str | None:
    """Bytes as text an operator's terminal can show: UTF-8 (invalid bytes replaced), control
    characters escaped, cut at `limit` characters with what was left out said."""
    if data is None:
        return None
    text = data.decode("utf-8", errors="replace")
    shown = "".join(char if char.isprintable() or char == " " else f"\\x{ord(char):02x}" for char in text[:limit])
    if len(text) > limit:
        shown += f"... ({len(text) - limit} more characters)"
    return shown


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, with its headers read."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    dead_lettered_at: datetime
    reason: str
    origin_topic: str | None
    origin_partition: int | None
    origin_offset: int | None
    consumer_group: str | None
    failed_at: str | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def name(self) -> str:
        return f"{self.dlq_topic}:{self.dlq_partition}:{self.dlq_offset}"

    @property
    def origin(self) -> str | None:
        if self.origin_topic is None:
            return None
        return f"{self.origin_topic}:{self.origin_partition}:{self.origin_offset}"

    def replay_headers(self) -> list[tuple[str, bytes]]:
        kept = [(name, value) for name, value in self.headers if not name.startswith(_DLQ_HEADER_PREFIX)]
        return kept + [(HEADER_REPLAYED_FROM, self.name.encode())]

    @classmethod
    def from_record(cls, record: Record) -> DeadLetter:
        text = {name: value.decode("utf-8", errors="replace") for name, value in record.headers if value is not None}
        return cls(
            dlq_topic=record.topic,
            dlq_partition=record.partition,
            dlq_offset=record.offset,
            dead_lettered_at=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
            reason=text.get(HEADER_DLQ_REASON, "(no dlq-reason header)"),
            origin_topic=text.get(HEADER_DLQ_TOPIC),
            origin_partition=_int_or_none(text.get(HEADER_DLQ_PARTITION)),
            origin_offset=_int_or_none(text.get(HEADER_DLQ_OFFSET)),
            consumer_group=text.get(HEADER_DLQ_GROUP),
            failed_at=text.get(HEADER_DLQ_FAILED_AT),
            key=record.key,
            value=record.value,
            headers=record.headers,
        )

    def shown(self, value_chars: int) -> dict[str, object]:
        """What `show` prints of it: bounded and printable."""
        return {
            "dlq": self.name,
            "reason": self.reason,
            "origin": self.origin,
            "consumer_group": self.consumer_group,
            "failed_at": self.failed_at,
            "key": printable(self.key, 200),
            "value": printable(self.value, value_chars),
            "value_bytes": len(self.value) if self.value is not None else None,
            "headers": {
                name: printable(value, 200) for name, value in self.headers if not name.startswith(_DLQ_HEADER_PREFIX)
            },
        }


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command acts on: a range of dead-letter offsets (inclusive), a
    substring of the reason (any case), an origin partition, the consumer group that
    dead-lettered it; each that is set must match."""

    from_offset: int | None = None
    to_offset: int | None = None
    reason: str | None = None
    origin_partition: int | None = None
    consumer_group: str | None = None

    @property
    def chooses_something(self) -> bool:
        chosen = (self.from_offset, self.to_offset, self.reason, self.origin_partition, self.consumer_group)
        return any(value is not None for value in chosen)

    def matches(self, letter: DeadLetter) -> bool:
        if self.from_offset is not None and letter.dlq_offset < self.from_offset:
            return False
        if self.to_offset is not None and letter.dlq_offset > self.to_offset:
            return False
        if self.reason is not None and self.reason.lower() not in letter.reason.lower():
            return False
        if self.origin_partition is not None and letter.origin_partition != self.origin_partition:
            return False
        return self.consumer_group is None or letter.consumer_group == self.consumer_group


async def read_dead_letters(bootstrap_servers: KafkaTarget, topic: str, selection: Selection) -> list[DeadLetter]:
    chosen: list[DeadLetter] = []

    def keep(record: Record) -> None:
        letter = DeadLetter.from_record(record)
        if selection.matches(letter):
            chosen.append(letter)

    await read_to_end(bootstrap_servers, [topic], keep)
    return sorted(chosen, key=lambda letter: (letter.dlq_partition, letter.dlq_offset))


@dataclass
class TopicSummary:
    topic: str
    exists: bool
    records: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    records: int


@dataclass(frozen=True)
class TopicCounts:
    """What `dlq list` shows of one topic: its most frequent reasons, and how many others."""

    topic: str
    exists: bool
    records: int
    first_offset: int | None
    last_offset: int | None
    reasons: list[ReasonCount]
    other_reasons: int

    @classmethod
    def of(cls, summary: TopicSummary, top: int) -> TopicCounts:
        return cls(
            topic=summary.topic,
            exists=summary.exists,
            records=summary.records,
            first_offset=summary.first_offset,
            last_offset=summary.last_offset,
            reasons=[ReasonCount(reason, count) for reason, count in summary.reasons.most_common(top)],
            other_reasons=max(len(summary.reasons) - top, 0),
        )


async def summarise(bootstrap_servers: KafkaTarget, topics: Sequence[str], *, missing_ok: bool) -> list[TopicSummary]:
    """Counts per dead-letter topic and per reason, every topic read with one consumer."""
    summaries = {topic: TopicSummary(topic, exists=True) for topic in topics}

    def count(record: Record) -> None:
        summary = summaries[record.topic]
        letter = DeadLetter.from_record(record)
        summary.records += 1
        summary.reasons[letter.reason] += 1
        summary.first_offset = (
            record.offset if summary.first_offset is None else min(summary.first_offset, record.offset)
        )
        summary.last_offset = record.offset if summary.last_offset is None else max(summary.last_offset, record.offset)

    result = await read_to_end(bootstrap_servers, list(topics), count, missing_ok=missing_ok)
    for topic in result.missing:
        summaries[topic].exists = False
    return list(summaries.values())


@dataclass(frozen=True)
class Replay:
    """One dead letter's replay: where it goes, and what happened (or would, in a dry run)."""

    dlq: str
    reason: str
    destination_topic: str | None
    destination_partition: int | None
    key: str | None
    outcome: str
    published_offset: int | None = None

    @property
    def problem(self) -> bool:
        """Whether it could not be replayed (a duplicate of another dead letter is not a problem)."""
        return self.outcome.startswith(("skipped", "failed"))


async def replay(bootstrap_servers: KafkaTarget, letters: Sequence[DeadLetter], *, dry_run: bool) -> list[Replay]:
    """Publish each dead letter to its origin topic and partition (the key keeps its partition,
    so its order with the key's other records holds); with `dry_run`, only say what would go."""
    origins = sorted({letter.origin_topic for letter in letters if letter.origin_topic is not None})
    partitions = await topic_partitions(bootstrap_servers, origins) if origins else {}
    plans: list[tuple[DeadLetter, Replay]] = []
    # Two groups reading one topic dead-letter the same record twice; it is published once.
    first_of_origin: dict[str, str] = {}
    for letter in letters:
        key = printable(letter.key, 200)
        if letter.origin is not None and letter.origin in first_of_origin:
            outcome = f"duplicate of {first_of_origin[letter.origin]}"
            plans.append((letter, Replay(letter.name, letter.reason, letter.origin_topic, None, key, outcome)))
            continue
        if letter.origin is not None:
            first_of_origin[letter.origin] = letter.name
        if letter.origin_topic is None:
            plans.append((letter, Replay(letter.name, letter.reason, None, None, key, "skipped: no dlq-topic header")))
            continue
        if not letter.value:
            # A record the consumer could not read is dead-lettered by its position alone, and a
            # tombstone as an empty value: neither has the original record to send again.
            outcome = "skipped: no original value (an unreadable record or a tombstone)"
            plans.append((letter, Replay(letter.name, letter.reason, letter.origin_topic, None, key, outcome)))
            continue
        if not partitions.get(letter.origin_topic):
            outcome = f"skipped: origin topic {letter.origin_topic} does not exist"
            plans.append((letter, Replay(letter.name, letter.reason, letter.origin_topic, None, key, outcome)))
            continue
        # The origin partition when the topic still has it; otherwise the key's partition by the
        # producer's partitioner (the topic was re-partitioned since).
        partition = letter.origin_partition if letter.origin_partition in partitions[letter.origin_topic] else None
        outcome = "would publish" if dry_run else "publishing"
        plans.append((letter, Replay(letter.name, letter.reason, letter.origin_topic, partition, key, outcome)))
    if dry_run:
        return [plan for _, plan in plans]
    return await _publish(bootstrap_servers, plans)


async def _publish(bootstrap_servers: KafkaTarget, plans: list[tuple[DeadLetter, Replay]]) -> list[Replay]:
    producer = make_producer(bootstrap_servers, "adledger-cli-dlq-replay")
    try:
        await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError, OSError) as error:
        await producer.stop()
        raise OperatorError(f"Kafka at {bootstrap_servers} did not answer: {error!r}") from error
    results: list[Replay] = []
    try:
        futures: list[asyncio.Future[Any] | None] = []
        for letter, plan in plans:
            if plan.outcome != "publishing":
                futures.append(None)
                continue
            assert plan.destination_topic is not None
            futures.append(
                await producer.send(
                    plan.destination_topic,
                    value=letter.value,
                    key=letter.key,
                    partition=plan.destination_partition,
                    headers=letter.replay_headers(),
                )
            )
        for (_, plan), future in zip(plans, futures, strict=True):
            if future is None:
                results.append(plan)
                continue
            try:
                metadata = await asyncio.wait_for(future, 60)
            except (TimeoutError, KafkaError) as error:
                results.append(replace(plan, outcome=f"failed: {error!r}"))
                continue
            results.append(
                replace(
                    plan,
                    outcome="published",
                    destination_partition=metadata.partition,
                    published_offset=metadata.offset,
                )
            )
    finally:
        await asyncio.wait_for(producer.stop(), 30)
    return results
