"""The outbox's age metric (deploy/observability's "outbox not draining" alert): the age of the oldest row
not yet published, per schema; it keeps growing while the relay cannot publish, and is 0 once the outbox
is empty. On the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncpg
import pytest
from adledger_libs.kafka import make_producer
from adledger_libs.outbox import OutboxRelay, unit_of_work
from prometheus_client import REGISTRY

from .conftest import Stack, TopicFactory
from .test_exactly_once import ThingCounted

pytestmark = pytest.mark.integration


def _age_s(schema: str) -> float | None:
    return REGISTRY.get_sample_value("adledger_outbox_oldest_age_seconds", {"schema": schema})


async def test_the_outbox_age_is_the_oldest_unpublished_rows_and_zero_when_all_are_published(
    stack: Stack, pool: asyncpg.Pool, schema: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic("outbox-age")
    async with unit_of_work(pool) as uow:
        uow.publish(ThingCounted(thing_id="old", amount_micros=1), topic=topic, key="old")
        uow.publish(ThingCounted(thing_id="new", amount_micros=2), topic=topic, key="new")
    # As if the relay had been unable to publish the first row for ten minutes.
    await pool.execute(
        "update outbox set created_at = created_at - interval '10 minutes' where id = (select min(id) from outbox)"
    )
    producer = make_producer(stack.kafka_bootstrap_servers, "tests")
    await producer.start()
    seen_during_the_round: list[float | None] = []

    async def look(_: list[int]) -> None:
        seen_during_the_round.append(_age_s(schema))

    try:
        relay = OutboxRelay(pool, producer, schema=schema, after_publish=look)
        assert _age_s(schema) == 0.0, "nothing seen yet"
        assert await relay.publish_pending() == 2
        # While the round publishes (Kafka acknowledged, rows not deleted yet), the oldest row's age shows.
        (during,) = seen_during_the_round
        assert during is not None and 600 <= during < 660
        assert await relay.publish_pending() == 0
        assert _age_s(schema) == 0.0
    finally:
        await producer.stop()
