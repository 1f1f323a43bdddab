"""Fixtures on the real stack: Apache Kafka and PostgreSQL, never mocks.

The stack is found in this order: already running at the configured addresses; started by the
project's own `deploy/local/stack start`; on a machine with a Docker engine, testcontainers.
If none works the session fails loudly: the integration suite is never skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest
import pytest_asyncio

from adledger_contracts.topics import TopicSpec
from adledger_libs.db import LIBRARY_MIGRATIONS, create_pool, migrate
from adledger_libs.kafka import ensure_topics

from ..deploy_modules import pinned_kafka_version
from .kafka_io import delete_consumer_groups, new_world_tag, take_world_tags

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack"


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap_servers: str
    database_url: str
    how: str


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _kafka_up(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return _reachable(host, int(port))


def _postgres_up(url: str) -> bool:
    parsed = urlparse(url)
    return _reachable(parsed.hostname or "127.0.0.1", parsed.port or 5432)


def _local_stack_env() -> dict[str, str]:
    output = subprocess.run([str(STACK), "env"], check=True, capture_output=True, text=True).stdout
    found: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = value.strip().strip("'\"")
    return found


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    bootstrap = os.environ.get("ADLEDGER_KAFKA_BOOTSTRAP_SERVERS")
    database_url = os.environ.get("ADLEDGER_DATABASE_URL")
    if not (bootstrap and database_url):
        defaults = _local_stack_env()
        bootstrap = bootstrap or defaults["ADLEDGER_KAFKA_BOOTSTRAP_SERVERS"]
        database_url = database_url or defaults["ADLEDGER_DATABASE_URL"]
    if _kafka_up(bootstrap) and _postgres_up(database_url):
        yield Stack(bootstrap, database_url, "running")
        return
    started = subprocess.run([str(STACK), "start"], text=True)
    if started.returncode == 0 and _kafka_up(bootstrap) and _postgres_up(database_url):
        yield Stack(bootstrap, database_url, "deploy/local/stack")
        return
    if _docker_engine():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with KafkaContainer(f"apache/kafka:{pinned_kafka_version()}").with_kraft() as kafka, PostgresContainer(
            "postgres:16", driver=None
        ) as postgres:
            yield Stack(kafka.get_bootstrap_server(), postgres.get_connection_url(), "testcontainers")
        return
    pytest.fail(
        "Kafka and PostgreSQL are not reachable, `deploy/local/stack start` failed (see its output above) "
        "and there is no Docker engine: the integration suite cannot run and is not skipped.",
        pytrace=False,
    )


@pytest.fixture(scope="session", autouse=True)
def _stack_env(stack: Stack) -> None:
    """Subprocesses started by tests (the services) find the same stack."""
    os.environ["ADLEDGER_KAFKA_BOOTSTRAP_SERVERS"] = stack.kafka_bootstrap_servers
    os.environ["ADLEDGER_DATABASE_URL"] = stack.database_url


def unique(prefix: str) -> str:
    """A name of this test's world; a consumer group named with it is deleted when the test ends."""
    return f"{prefix}_{new_world_tag()}"


@pytest.fixture(autouse=True)
def _delete_the_consumer_groups_of_the_test(stack: Stack) -> Iterator[None]:
    """Deletes the consumer groups the test's world made on the broker once the test and its fixtures
    ended (an autouse fixture is set up first, so it is torn down last). Clean-up is bounded and never
    fails the test: a group it cannot delete is reported and left."""
    take_world_tags()
    yield
    tags = take_world_tags()
    if not tags:
        return
    try:
        delete_consumer_groups(stack.kafka_bootstrap_servers, tags, timeout_s=10.0)
    except Exception as error:  # noqa: BLE001 - clean-up must not turn a passing test into a failure
        print(f"warning: the test's consumer groups were not deleted: {error!r}", file=sys.stderr)


@pytest_asyncio.fixture
async def schema(stack: Stack) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema with the library's tables, dropped after the test."""
    name = unique("t")
    conn = await asyncpg.connect(stack.database_url)
    try:
        await migrate(conn, name, [("adledger_libs", LIBRARY_MIGRATIONS)])
        yield name
    finally:
        await conn.execute(f"drop schema if exists {name} cascade")
        await conn.close()


@pytest_asyncio.fixture
async def pool(stack: Stack, schema: str) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(stack.database_url, schema, application_name="adledger-tests", max_size=8)
    try:
        yield created
    finally:
        await created.close()


class TopicFactory:
    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap

    async def __call__(self, prefix: str = "test", partitions: int = 3) -> str:
        return await self.create(f"{prefix}.{uuid.uuid4().hex[:10]}", partitions=partitions)

    async def create(self, name: str, partitions: int = 3) -> str:
        spec = TopicSpec(name, "key", partitions, "delete", ("tests",), ("tests",), (), "a test topic")
        await ensure_topics(self._bootstrap, [spec])
        return name


@pytest.fixture
def new_topic(stack: Stack) -> TopicFactory:
    return TopicFactory(stack.kafka_bootstrap_servers)
