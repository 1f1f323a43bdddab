"""Kafka adapters on aiokafka: an idempotent producer and topic creation from the catalogue.

The consumer side, with manual commits after the database commit, is in `consumer.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from adledger_contracts.topics import TopicSpec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

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
    """Create the topics that don't exist yet, and return once every partition of every topic
    has a leader that serves it. An existing topic is left as it is: changing partitions or
    configs of a live topic is an operator's decision, not a service start's.

    Fails with TimeoutError after `timeout_s` rather than letting a producer retry for ever.
    """
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
        partitions = await _wait_for_metadata(admin, [spec.name for spec in specs], timeout_s)
    finally:
        await admin.close()
    await _wait_for_leaders(bootstrap_servers, partitions, timeout_s)


def _single_node(bootstrap_servers: str) -> bool:
    return "," not in bootstrap_servers


async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> list[TopicPartition]:
    """Wait until the metadata lists every topic with partitions that all name a leader."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            described = await admin.describe_topics(names)
            if all(
                item.get("error_code", 0) == 0
                and item.get("partitions")
                and all(part["error_code"] == 0 and part["leader"] >= 0 for part in item["partitions"])
                for item in described
            ):
                return [TopicPartition(item["topic"], part["partition"]) for item in described for part in item["partitions"]]
        except KafkaError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics have no leader for every partition after {timeout_s:.0f}s: {names}")
        await asyncio.sleep(0.1)


async def _wait_for_leaders(bootstrap_servers: str, partitions: list[TopicPartition], timeout_s: float) -> None:
    """Wait until each partition's leader really serves it.

    Right after a topic is created, the metadata already names the leader while that broker has
    not yet taken the partition over: a produce then fails with NotLeaderForPartition, which an
    idempotent producer retries without end. Reading the end offsets is served by the leader
    alone and is retried by the client on that error, so once it succeeds the partitions take
    records."""
    if not partitions:
        return
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id="adledger-topic-setup",
        enable_auto_commit=False,
        request_timeout_ms=max(int(timeout_s * 1000), 1000),
    )
    await probe.start()
    try:
        await asyncio.wait_for(probe.end_offsets(partitions), timeout_s)
    except (TimeoutError, KafkaError) as error:
        topics = sorted({tp.topic for tp in partitions})
        raise TimeoutError(f"the leaders of {topics} did not serve their partitions within {timeout_s:.0f}s: {error!r}") from error
    finally:
        await probe.stop()
