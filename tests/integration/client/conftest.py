"""The ad-server client on the real broker, on topics of each test's own laid out like the
contract's (partitions, compaction), so nothing another run or `make run` publishes disturbs it.

Platform records are made the way the platform makes them (its models and its envelope, as the
outbox relay publishes them), so the client is tested against the real wire format.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from adledger_client import DeliveryChange, Topics
from adledger_contracts.external import BalanceChanged, DeliveryDecided, DeliveryStateChanged
from adledger_contracts.topics import topic
from adledger_libs.events import Message, encode
from adledger_libs.kafka import ensure_topics

from ..conftest import Stack, unique
from ..kafka_io import produce

T0 = datetime(2026, 11, 21, 9, tzinfo=UTC)
#: Every wait in these tests is bounded by this (no sleep for a deadline).
WAIT_S = 30.0


async def own_topics(stack: Stack, partitions: int = 3) -> Topics:
    """Topics of the test's own, laid out like the contract's (compacted where the contract's are)."""
    topics = Topics(
        spend=unique("ads.spend.v1"), delivery_control=unique("delivery.control.v1"),
        delivery_state=unique("delivery.state.v1"), balances=unique("balances.v1"),
    )
    await ensure_topics(
        stack.kafka_bootstrap_servers,
        [
            replace(topic("ads.spend.v1"), name=topics.spend, partitions=partitions),
            replace(topic("delivery.control.v1"), name=topics.delivery_control, partitions=partitions),
            replace(topic("delivery.state.v1"), name=topics.delivery_state, partitions=partitions),
            replace(topic("balances.v1"), name=topics.balances, partitions=partitions),
        ],
    )
    return topics


@pytest_asyncio.fixture
async def topics(stack: Stack) -> AsyncIterator[Topics]:
    yield await own_topics(stack)


class Platform:
    """Publishes what the spend consumer and the wallet publish, record by record."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap = bootstrap
        self.topics = topics

    async def send(self, topic_name: str, key: str, message: Message | None, *, event_id: str | None = None) -> tuple[int, int]:
        if message is None:
            return (await produce(self.bootstrap, topic_name, [(key.encode(), None, [])]))[0]  # type: ignore[list-item]
        envelope = encode(message, key=key, trace_id="trace-test", event_id=event_id)
        return (await produce(self.bootstrap, topic_name, [(envelope.key, envelope.value, list(envelope.headers))]))[0]

    async def raw(self, topic_name: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        await produce(self.bootstrap, topic_name, [(key, value, headers or [])])

    async def decide(self, account: str, campaign: str | None, action: str, reason: str, *, event_id: str | None = None) -> DeliveryDecided:
        decision = DeliveryDecided(
            ad_account_id=account, campaign_id=campaign, action=action, reason=reason,  # type: ignore[arg-type]
            business_center_id=None, decided_at=T0, cause_event_id=None,
        )
        await self.send(self.topics.delivery_control, account, decision, event_id=event_id)
        return decision

    async def state(self, account: str, campaign: str | None, serving: bool, reason: str) -> DeliveryStateChanged:
        state = DeliveryStateChanged(ad_account_id=account, campaign_id=campaign, serving=serving, reason=reason, updated_at=T0)
        await self.send(self.topics.delivery_state, account if campaign is None else f"{account}/{campaign}", state)
        return state

    async def forget(self, account: str, campaign: str | None) -> None:
        await self.send(self.topics.delivery_state, account if campaign is None else f"{account}/{campaign}", None)

    async def balance(self, owner: str, version: int, available_micros: int) -> BalanceChanged:
        balance = BalanceChanged(
            owner_id=owner, owner_kind="ad_account", currency="USD", real_micros=available_micros, virtual_micros=available_micros,
            available_micros=available_micros, buckets={"cash": available_micros, "credit_line": 0, "vouchers": 0},  # type: ignore[arg-type]
            version=version, updated_at=T0,
        )
        await self.send(self.topics.balances, owner, balance)
        return balance


@pytest_asyncio.fixture
async def platform(stack: Stack, topics: Topics) -> Platform:
    return Platform(stack.kafka_bootstrap_servers, topics)


class Changes:
    """The gate's callbacks, awaited with a bounded wait."""

    def __init__(self) -> None:
        self.seen: list[DeliveryChange] = []
        self._queue: asyncio.Queue[DeliveryChange] = asyncio.Queue()

    def __call__(self, change: DeliveryChange) -> None:
        self.seen.append(change)
        self._queue.put_nowait(change)

    async def next(self, timeout_s: float = WAIT_S) -> DeliveryChange:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no change of the gate within {timeout_s:.0f}s; seen: {self.seen}") from None

    def pending(self) -> list[DeliveryChange]:
        found: list[DeliveryChange] = []
        while not self._queue.empty():
            found.append(self._queue.get_nowait())
        return found


def summary(change: DeliveryChange) -> tuple[Any, ...]:
    return (change.ad_account_id, change.campaign_id, change.serving, change.reason, change.source, change.cold_start)
