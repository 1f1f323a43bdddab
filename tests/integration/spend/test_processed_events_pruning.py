"""Applied spend event ids are forgotten once older than the spend topic's retention (issue 14,
lever 5), by a job on the injected clock (T1): the dedupe table does not grow for ever, and an
id inside the retention still dedupes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from adledger_libs.clock import ManualClock
from adledger_spend_consumer.core import ProcessedEventsPruning

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


async def test_t1_processed_spend_event_ids_are_pruned_after_the_topics_retention(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.executemany(
            "insert into processed_events (group_id, topic, event_id, processed_at) values ($1, $2, $3, $4)",
            [
                ("spend", "ads.spend.v1", "old-1", NOW - timedelta(days=9)),
                ("spend", "ads.spend.v1", "old-2", NOW - timedelta(days=8, seconds=1)),
                ("spend", "ads.spend.v1", "recent", NOW - timedelta(days=7)),
                ("spend", "wallet.events.v1", "other-topic", NOW - timedelta(days=30)),
                ("other-group", "ads.spend.v1", "other-group", NOW - timedelta(days=30)),
            ],
        )
    clock = ManualClock(NOW)
    job = ProcessedEventsPruning(lambda: pool, clock, "spend", ["ads.spend.v1"], timedelta(days=8))

    assert await job.run() == 2
    async with pool.acquire() as conn:
        left = {row["event_id"] for row in await conn.fetch("select event_id from processed_events")}
    assert left == {"recent", "other-topic", "other-group"}

    assert await job.run() == 0
    clock.advance(timedelta(days=1, seconds=1))
    assert await job.run() == 1
    async with pool.acquire() as conn:
        left = {row["event_id"] for row in await conn.fetch("select event_id from processed_events")}
    assert left == {"other-topic", "other-group"}
