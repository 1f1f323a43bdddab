"""BalanceSubscriber on the real broker: every balance known after the cold start, then live, the
newest version per owner kept and an older one dropped."""

from __future__ import annotations

import asyncio

import pytest
from adledger_client import Balance, BalanceSubscriber, Topics

from ..conftest import Stack
from .conftest import WAIT_S, Platform

pytestmark = pytest.mark.integration


async def test_balances_are_known_after_the_cold_start_and_an_older_version_is_dropped(
    stack: Stack, topics: Topics, platform: Platform
) -> None:
    # Out of order, as two publishers and a relay's re-send can leave them.
    for version, available_micros in ((1, 10), (3, 30), (2, 20), (3, 31)):
        await platform.balance("acc-1", version, available_micros)
    await platform.balance("bc-1", 7, 700)
    await platform.raw(topics.balances, b"acc-2", b'{"owner_id": "acc-2", "available_micros": 1.5}')

    arrived: asyncio.Queue[Balance] = asyncio.Queue()
    subscriber = BalanceSubscriber(stack.kafka_bootstrap_servers, topics=topics, on_balance=arrived.put_nowait, ready_timeout_s=30)
    async with subscriber:
        held = subscriber.balance("acc-1")
        assert held is not None and (held.version, held.available_micros) == (3, 30)
        assert subscriber.stale_dropped == 2 and subscriber.skipped_records == 1
        assert set(subscriber.balances()) == {"acc-1", "bc-1"} and subscriber.balance("acc-2") is None
        while not arrived.empty():
            arrived.get_nowait()

        await platform.balance("acc-1", 2, 99)  # older than the one held
        await platform.balance("acc-1", 4, 40)
        newer = await asyncio.wait_for(arrived.get(), WAIT_S)
        assert (newer.owner_id, newer.version, newer.available_micros) == ("acc-1", 4, 40)
        assert subscriber.stale_dropped == 3 and arrived.empty()
        held = subscriber.balance("acc-1")
        assert held is not None and held.version == 4


async def test_a_subscriber_keeps_only_the_owners_it_was_asked_for(stack: Stack, topics: Topics, platform: Platform) -> None:
    await platform.balance("acc-1", 1, 10)
    await platform.balance("acc-2", 1, 20)
    async with BalanceSubscriber(stack.kafka_bootstrap_servers, topics=topics, owners={"acc-2"}, ready_timeout_s=30) as subscriber:
        assert set(subscriber.balances()) == {"acc-2"}
