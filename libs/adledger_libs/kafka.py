"""Kafka adapters on aiokafka: an idempotent producer and topic creation from the catalogue.

The consumer side, with manual commits after the database commit, is in `consumer.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from adledger_contracts.topics import TopicSpec
from adledger_libs.logs import get_logger

log = get_logger(__name__)


def make_producer(bootstrap_servers: str, client_id: str, *, linger_ms: int = 2) -> AIOKafkaProducer:
    """An idempotent producer: the broker drops a retried batch it already has, and order per
    partition is kept, so a retry never doubles or reorders an event."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], *, timeout_s: float = 30.0) -> None:
    """Create the topics that don't exist yet. An existing topic is left as it is: changing
    partitions or configs of a live topic is an operator's decision, not a service start's."""
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="adledger-topic-setup")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=1 if _single_node(bootstrap_servers) else 3,
                            topic_configs=spec.topic_configs(),
                        )
                        for spec in missing
                    ],
                    timeout_ms=int(timeout_s * 1000),
                )
            except TopicAlreadyExistsError:
                # Another instance created them between our list and our create; that is fine.
                pass
            log.info("topics_created", topics=[spec.name for spec in missing])
        await _wait_for_metadata(admin, [spec.name for spec in specs], timeout_s)
    finally:
        await admin.close()


def _single_node(bootstrap_servers: str) -> bool:
    return "," not in bootstrap_servers


async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            described = await admin.describe_topics(names)
            if all(item.get("error_code", 0) == 0 and item.get("partitions") for item in described):
                return
        except KafkaError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics not ready after {timeout_s:.0f}s: {names}")
        await asyncio.sleep(0.1)
