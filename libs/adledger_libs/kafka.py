"""Kafka adapters on aiokafka: an idempotent producer and topic creation from the catalogue.

The consumer side, with manual commits after the database commit, is in `consumer.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from adledger_contracts.topics import TopicSpec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from adledger_libs.logs import get_logger

log = get_logger(__name__)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


@dataclass(frozen=True)
class KafkaConnection:
    """Where a Kafka client connects and as whom (issue 12): the bootstrap servers, the security
    protocol, and for SASL the mechanism and the principal's credentials; for TLS the CA (and a
    client certificate, if the broker asks for one). `str()` is the bootstrap servers only, so an
    error message that names the connection never carries its password."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    def __str__(self) -> str:
        return self.bootstrap_servers

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")


#: What every client of the platform is given to connect: a connection, or bootstrap servers alone
#: (PLAINTEXT, the local stack).
KafkaTarget = str | KafkaConnection


def client_options(target: KafkaTarget) -> dict[str, Any]:
    """aiokafka's keyword arguments for a producer, consumer or admin client of `target`: the one
    place where the platform's Kafka clients get their address, security protocol and credentials."""
    connection = target if isinstance(target, KafkaConnection) else KafkaConnection(target)
    options: dict[str, Any] = {
        "bootstrap_servers": connection.bootstrap_servers,
        "security_protocol": connection.security_protocol,
    }
    if connection.sasl:
        if not connection.username or not connection.password:
            raise ValueError(f"Kafka {connection.security_protocol} needs a username and a password")
        options |= {
            "sasl_mechanism": connection.sasl_mechanism,
            "sasl_plain_username": connection.username,
            "sasl_plain_password": connection.password,
        }
    if connection.tls:
        options["ssl_context"] = create_ssl_context(
            cafile=connection.ssl_cafile or None,
            certfile=connection.ssl_certfile or None,
            keyfile=connection.ssl_keyfile or None,
        )
    return options


def make_producer(target: KafkaTarget, client_id: str, *, linger_ms: int = 2) -> AIOKafkaProducer:
    """An idempotent producer: the broker drops a retried batch it already has, and order per
    partition is kept, so a retry never doubles or reorders an event."""
    return AIOKafkaProducer(
        **client_options(target),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


async def ensure_topics(target: KafkaTarget, specs: Iterable[TopicSpec], *, timeout_s: float = 30.0) -> None:
    """Create the topics that don't exist yet, and return once every partition of every topic
    has a leader that serves it. An existing topic is left as it is: changing partitions or
    configs of a live topic is an operator's decision, not a service start's.

    Fails with TimeoutError after `timeout_s` rather than letting a producer retry for ever.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(**client_options(target), client_id="adledger-topic-setup")
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
                            replication_factor=1 if _single_node(str(target)) else 3,
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
    await _wait_for_leaders(target, partitions, timeout_s)


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


async def _wait_for_leaders(target: KafkaTarget, partitions: list[TopicPartition], timeout_s: float) -> None:
    """Wait until each partition's leader really serves it.

    Right after a topic is created, the metadata already names the leader while that broker has
    not yet taken the partition over: a produce then fails with NotLeaderForPartition, which an
    idempotent producer retries without end. Reading the end offsets is served by the leader
    alone and is retried by the client on that error, so once it succeeds the partitions take
    records."""
    if not partitions:
        return
    probe = AIOKafkaConsumer(
        **client_options(target),
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
