"""`adledger lag` shows the figures of Kafka's own `kafka-consumer-groups --describe`, for a group
with known lag and no members, and for a group with a live member (assigned partitions, one of
them without a committed offset)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from .cli_process import adledger
from .conftest import ROOT, Stack, TopicFactory, unique
from .waits import until

pytestmark = pytest.mark.integration

KAFKA_TOOLS = ROOT / "deploy" / "local" / "kafka"
COLUMNS = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID")


def _kafka_tool_rows(bootstrap: str, groups: list[str]) -> set[tuple[str, ...]]:
    """The rows Kafka's own tool prints for the groups, every column as text."""
    arguments = [str(KAFKA_TOOLS), "consumer-groups", "--bootstrap-server", bootstrap, "--describe"]
    for group in groups:
        arguments += ["--group", group]
    completed = subprocess.run(arguments, check=False, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = set()
    for line in completed.stdout.splitlines():
        fields = line.split()
        if len(fields) == len(COLUMNS) and fields[0] in groups:
            rows.add(tuple(fields))
    return rows


def _delete_groups(bootstrap: str, groups: list[str]) -> None:
    arguments = [str(KAFKA_TOOLS), "consumer-groups", "--bootstrap-server", bootstrap, "--delete"]
    for group in groups:
        arguments += ["--group", group]
    subprocess.run(arguments, check=False, capture_output=True, timeout=120)


def _cli_rows(groups: list[dict[str, object]]) -> set[tuple[str, ...]]:
    def text(value: object) -> str:
        return "-" if value is None else str(value)

    return {
        (
            str(group["group"]),
            *(
                text(partition[name])
                for name in (
                    "topic",
                    "partition",
                    "committed_offset",
                    "log_end_offset",
                    "lag",
                    "consumer_id",
                    "host",
                    "client_id",
                )
            ),
        )
        for group in groups
        for partition in group["partitions"]  # type: ignore[attr-defined]
    }


async def test_lag_agrees_with_kafkas_own_tool_for_groups_with_known_lag(stack: Stack, new_topic: TopicFactory) -> None:
    topic = await new_topic("cli-lag", partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for partition, count in ((0, 10), (1, 5), (2, 3)):
            for number in range(count):
                await producer.send_and_wait(topic, f"record-{number}".encode(), partition=partition)
    finally:
        await producer.stop()
    partitions = [TopicPartition(topic, number) for number in range(3)]

    # A group without members, which committed 4 of 10 and 5 of 5 (lag 6 and 0; nothing on partition 2).
    idle = unique("cli-lag-idle")
    committer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap_servers, group_id=idle, enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign(partitions)
        await committer.commit({partitions[0]: 4, partitions[1]: 5})
    finally:
        await committer.stop()

    # A group with a live member assigned all three partitions, which committed 1 on partition 0 only.
    active = unique("cli-lag-active")
    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap_servers,
        group_id=active,
        enable_auto_commit=False,
        client_id="cli-lag-member",
    )
    await member.start()
    try:
        await until(lambda: _assigned(member, 3), "the member's assignment", timeout_s=30)
        await member.commit({partitions[0]: 1})

        result = await adledger("lag", "--json")
        assert result.returncode == 0, result
        ours = {row for row in _cli_rows(result.json()) if row[0] in (idle, active)}
        single = await adledger("lag", "--group", idle, "--json")
        assert single.returncode == 0, single
        theirs = await asyncio.to_thread(_kafka_tool_rows, stack.kafka_bootstrap_servers, [idle, active])
    finally:
        await member.stop()
    # The groups go, so runs do not pile groups up on the shared broker.
    await asyncio.to_thread(_delete_groups, stack.kafka_bootstrap_servers, [idle, active])

    assert ours == theirs
    assert _cli_rows(single.json()) == {row for row in theirs if row[0] == idle}
    by_partition = {(row[0], row[2]): row for row in ours}
    assert by_partition[(idle, "0")][3:6] == ("4", "10", "6")
    assert by_partition[(idle, "1")][3:6] == ("5", "5", "0")
    assert (idle, "2") not in by_partition, "no offset and no member: Kafka's tool lists no row either"
    assert by_partition[(active, "0")][3:6] == ("1", "10", "9")
    assert by_partition[(active, "2")][3:6] == ("-", "3", "-"), "assigned without an offset: lag unknown"
    assert by_partition[(active, "2")][8] == "cli-lag-member"


async def _assigned(member: AIOKafkaConsumer, count: int) -> bool:
    await member.getmany(timeout_ms=100)
    return len(member.assignment()) == count


async def test_lag_of_a_group_that_does_not_exist_says_so(stack: Stack) -> None:
    result = await adledger("lag", "--group", unique("no-such-group"))
    assert result.returncode == 3, result
    assert "no consumer group" in result.stderr
