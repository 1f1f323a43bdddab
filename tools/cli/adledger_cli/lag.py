"""Consumer lag per group and partition: the figures of Kafka's own
`kafka-consumer-groups --describe`, from the same broker answers.

For each group: its committed offsets (OffsetFetch), its members and their assignments
(DescribeGroups), and the log-end offset of each partition (ListOffsets, latest, read
uncommitted: the high watermark, as Kafka's tool asks it). A partition is listed when the group
committed an offset for it or a member is assigned it; its lag is log end minus committed, and
unknown (`-`) without a committed offset or for a topic that no longer exists.

A service's own stored position (in its database, the truth for exactly once) leads the
committed offset by at most one batch: the offset is committed to Kafka right after the
database commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError

from adledger_libs.kafka import KafkaTarget, client_options
from adledger_cli.errors import OperatorError
from adledger_cli.topics import CONNECT_TIMEOUT_S, consumer, topic_partitions

#: How many groups are asked about at once (each is one round trip to its coordinator).
_CONCURRENT_GROUPS = 16


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed_offset: int | None
    log_end_offset: int | None
    lag: int | None
    consumer_id: str | None
    host: str | None
    client_id: str | None


@dataclass(frozen=True)
class GroupLag:
    group: str
    state: str
    members: int
    partitions: list[PartitionLag] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        return sum(partition.lag for partition in self.partitions if partition.lag is not None)


@dataclass(frozen=True)
class _Member:
    consumer_id: str
    host: str
    client_id: str


async def describe_lag(bootstrap_servers: KafkaTarget, group: str | None = None) -> list[GroupLag]:
    """Every consumer group's lag (or one group's), sorted by group, topic, partition."""
    admin = AIOKafkaAdminClient(
        **client_options(bootstrap_servers),
        client_id="adledger-cli-lag",
        request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError, OSError) as error:
        await admin.close()
        raise OperatorError(f"Kafka at {bootstrap_servers} did not answer: {error!r}") from error
    try:
        if group is None:
            listed = await admin.list_consumer_groups()
            # Kafka's tool lists the groups of consumers (protocol type "consumer"); groups of
            # other kinds (Connect workers, share groups) have no committed offsets to compare.
            groups = sorted({entry[0] for entry in listed if entry[1] in ("consumer", "")})
        else:
            groups = [group]
        states = await _group_states(admin, groups)
    finally:
        await admin.close()
    if group is not None and states and states[0][1] == "Dead" and not states[0][3]:
        raise OperatorError(f"no consumer group {group!r} on the broker")
    wanted = {tp for _, _, assigned, committed in states for tp in (*assigned, *committed)}
    ends = await _log_end_offsets(bootstrap_servers, wanted)
    result: list[GroupLag] = []
    for group_id, state, assigned, committed in states:
        rows = []
        for tp in sorted({*assigned, *committed}, key=lambda tp: (tp.topic, tp.partition)):
            member = assigned.get(tp)
            offset = committed.get(tp)
            end = ends.get(tp)
            rows.append(
                PartitionLag(
                    topic=tp.topic,
                    partition=tp.partition,
                    committed_offset=offset,
                    log_end_offset=end,
                    lag=end - offset if end is not None and offset is not None else None,
                    consumer_id=member.consumer_id if member else None,
                    host=member.host if member else None,
                    client_id=member.client_id if member else None,
                )
            )
        result.append(GroupLag(group_id, state, len({member.consumer_id for member in assigned.values()}), rows))
    return result


_GroupState = tuple[str, str, dict[TopicPartition, _Member], dict[TopicPartition, int]]


async def _group_states(admin: AIOKafkaAdminClient, groups: list[str]) -> list[_GroupState]:
    """Each group's state, who is assigned what, and its committed offsets: three round trips per
    group (its coordinator, DescribeGroups, OffsetFetch), at most _CONCURRENT_GROUPS at once."""
    limit = asyncio.Semaphore(_CONCURRENT_GROUPS)

    async def coordinator_of(group_id: str) -> int:
        async with limit:
            node_id: int = await admin.find_coordinator(group_id)
            return node_id

    async def offsets_of(group_id: str, node_id: int) -> dict[TopicPartition, int]:
        async with limit:
            offsets = await admin.list_consumer_group_offsets(group_id, group_coordinator_id=node_id)
        # -1 means the group has no offset for that partition.
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def describe(group_id: str, node_id: int) -> tuple[str, dict[TopicPartition, _Member]]:
        # One group per request: aiokafka fails to decode some answers for several groups at once.
        async with limit:
            responses = await admin.describe_consumer_groups([group_id], group_coordinator_id=node_id)
        for response in responses:
            for entry in response.groups:
                if entry[1] == group_id:
                    return _described(entry)
        return "Unknown", {}

    try:
        coordinators = dict(
            zip(groups, await asyncio.gather(*(coordinator_of(group_id) for group_id in groups)), strict=True)
        )
        described = dict(
            zip(
                groups,
                await asyncio.gather(*(describe(group_id, coordinators[group_id]) for group_id in groups)),
                strict=True,
            )
        )
        committed = await asyncio.gather(*(offsets_of(group_id, coordinators[group_id]) for group_id in groups))
    except KafkaError as error:
        raise OperatorError(f"the broker refused to describe the consumer groups: {error!r}") from error
    return [
        (group_id, *described.get(group_id, ("Unknown", {})), offsets)
        for group_id, offsets in zip(groups, committed, strict=True)
    ]


def _described(entry: tuple[object, ...]) -> tuple[str, dict[TopicPartition, _Member]]:
    """A DescribeGroups entry (error_code, group, state, protocol_type, protocol, members, ...)
    as the group's state and its members' assigned partitions."""
    error_code, _, state, _, _, members = entry[:6]
    assigned: dict[TopicPartition, _Member] = {}
    if error_code:
        return "Unknown", assigned
    for member in members:  # type: ignore[attr-defined]
        member_id, client_id, client_host, _, member_assignment = member[:5]
        if not member_assignment:
            continue
        for tp in ConsumerProtocolMemberAssignment.decode(member_assignment).partitions():
            assigned[tp] = _Member(member_id, client_host, client_id)
    return str(state), assigned


async def _log_end_offsets(bootstrap_servers: KafkaTarget, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
    """The high watermark of each partition that still exists (a test's topic may be deleted
    while its group's offsets remain)."""
    if not partitions:
        return {}
    existing_partitions = await topic_partitions(bootstrap_servers, sorted({tp.topic for tp in partitions}))
    existing = [tp for tp in partitions if tp.partition in existing_partitions.get(tp.topic, [])]
    if not existing:
        return {}
    # Read uncommitted: the end offsets are then the high watermarks, the figure Kafka's tool shows
    # (read committed would give the last stable offset, short of any open transaction).
    async with consumer(bootstrap_servers, client_id="adledger-cli-lag", isolation_level="read_uncommitted") as client:
        # Assigned first, so one metadata update covers every topic; asked unassigned, the
        # consumer learns the topics one at a time, a retry each (13 s for 240 partitions here).
        client.assign(existing)
        ends = await asyncio.wait_for(client.end_offsets(existing), CONNECT_TIMEOUT_S)
    return dict(ends)
