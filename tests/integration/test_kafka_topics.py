"""Topic creation on the real broker: `ensure_topics` returns only once every partition takes records.

Right after a topic is created the metadata already names its leader while the broker has not yet
taken the partition over; a producer that writes then gets NotLeaderForPartition and, when it is
idempotent, retries without end. A fresh broker once hung the benchmark that way for 600 s.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from adledger_contracts.topics import TopicSpec
from adledger_libs.kafka import ensure_topics
from aiokafka import AIOKafkaProducer

from .conftest import Stack, unique

pytestmark = pytest.mark.integration


async def test_ensure_topics_returns_when_every_partition_has_a_serving_leader(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiokafka")
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for _ in range(3):
            name = unique("ready").replace("_", ".")
            await ensure_topics(stack.kafka_bootstrap_servers, [TopicSpec(name, "key", 12, "delete", ("tests",), ("tests",), (), "a test topic")])
            # The first write to each partition, at once: none may be refused by a leader that is not ready.
            delivered = await asyncio.wait_for(
                asyncio.gather(*[await producer.send(name, b"x", partition=number) for number in range(12)]), 30
            )
            assert sorted(item.partition for item in delivered) == list(range(12))
    finally:
        await producer.stop()
    refused = [record.getMessage() for record in caplog.records if "NotLeader" in record.getMessage()]
    assert refused == [], refused[:3]

