"""SpendPublisher on the real broker (rules S1, S6, M1): the contract's records, keyed by the ad
account, read back as the platform's spend consumer reads them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from adledger_client import SpendEvent, SpendNotPublishedError, SpendPublisher, Topics
from adledger_contracts.external import SpendReported
from adledger_libs.events import decode
from pydantic import ValidationError

from ..conftest import Stack
from ..kafka_io import read_all

pytestmark = pytest.mark.integration

SERVED_AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


async def test_s1_s6_spend_and_its_final_cost_are_the_contracts_records_keyed_by_the_ad_account(stack: Stack, topics: Topics) -> None:
    async with SpendPublisher(stack.kafka_bootstrap_servers, topics=topics, clock=lambda: SERVED_AT) as publisher:
        charge = await publisher.spend("acc-1", "cmp-1", 1_500, "USD", charge_id="impression-1")
        final = await publisher.final_cost(charge, 1_200)
        other = await publisher.spend("acc-2", "cmp-9", 700, "EUR", event_id="auction-77")

    records = await read_all(stack.kafka_bootstrap_servers, topics.spend, expect=3)
    assert len(records) == 3
    by_id = {json.loads(record.value or b"")["event_id"]: record for record in records}
    assert set(by_id) == {charge.event_id, final.event_id, "auction-77"} and other.event_id == "auction-77"
    first = by_id[charge.event_id]
    assert first.key == b"acc-1" and by_id[final.event_id].key == b"acc-1" and by_id["auction-77"].key == b"acc-2"
    # One account's spend is on one partition, in the order it was published (the platform takes it so).
    assert first.partition == by_id[final.event_id].partition and first.offset < by_id[final.event_id].offset
    assert json.loads(first.value or b"") == {
        "event_id": charge.event_id, "ad_account_id": "acc-1", "campaign_id": "cmp-1", "amount_micros": 1_500,
        "currency": "USD", "occurred_at": "2026-11-21T09:30:00Z", "charge_id": "impression-1",
    }
    assert first.headers["event-type"] == "SpendReported" and first.headers["event-id"] == charge.event_id
    assert first.headers["schema-version"] == "1" and first.headers["trace-id"] == charge.event_id
    # The platform's own decoding reads them as they are meant.
    adjustment = decode(SpendReported, by_id[final.event_id].value)
    assert (adjustment.charge_id, adjustment.amount_micros, adjustment.occurred_at) == ("impression-1", 1_200, SERVED_AT)


async def test_s1_publishing_the_same_event_again_keeps_its_id(stack: Stack, topics: Topics) -> None:
    async with SpendPublisher(stack.kafka_bootstrap_servers, topics=topics) as publisher:
        event = publisher.event("acc-1", "cmp-1", 2_000, "USD")
        first = await publisher.publish(event)
        again = await publisher.publish(event)
    assert first.event_id == again.event_id == event.event_id and again.offset > first.offset
    records = await read_all(stack.kafka_bootstrap_servers, topics.spend, expect=2)
    assert [json.loads(record.value or b"")["event_id"] for record in records] == [event.event_id] * 2


async def test_s1_a_batch_of_spend_is_acknowledged_once_each_in_order_per_account(stack: Stack, topics: Topics) -> None:
    async with SpendPublisher(stack.kafka_bootstrap_servers, topics=topics, linger_ms=20) as publisher:
        events = [publisher.event(f"acc-{number % 7}", "cmp-1", number + 1, "USD") for number in range(700)]
        published = await publisher.publish_many(events)
    assert [item.event_id for item in published] == [event.event_id for event in events]
    records = await read_all(stack.kafka_bootstrap_servers, topics.spend, expect=700)
    assert len(records) == 700
    for account in {event.ad_account_id for event in events}:
        sent = [event.amount_micros for event in events if event.ad_account_id == account]
        stored = sorted((record.offset, json.loads(record.value or b"")["amount_micros"]) for record in records if record.key == account.encode())
        assert [amount for _, amount in stored] == sent, account
    assert sum(json.loads(record.value or b"")["amount_micros"] for record in records) == sum(range(1, 701))


async def test_m1_a_float_or_an_unbounded_amount_is_refused_before_anything_is_sent(stack: Stack, topics: Topics) -> None:
    async with SpendPublisher(stack.kafka_bootstrap_servers, topics=topics) as publisher:
        for amount in (1.5, 2.0, 0, 2**63, True):
            with pytest.raises(ValidationError):
                await publisher.spend("acc-1", "cmp-1", amount, "USD")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await publisher.publish({"amount_micros": 1})  # type: ignore[arg-type]
        await publisher.spend("acc-1", "cmp-1", 1, "USD")
    records = await read_all(stack.kafka_bootstrap_servers, topics.spend, expect=1)
    assert [json.loads(record.value or b"")["amount_micros"] for record in records] == [1]


async def test_s1_a_spend_that_could_not_be_handed_over_names_the_event_to_publish_again(stack: Stack, topics: Topics) -> None:
    publisher = SpendPublisher(stack.kafka_bootstrap_servers, topics=topics)
    event = SpendEvent(ad_account_id="acc-1", campaign_id="cmp-1", amount_micros=5, currency="USD", occurred_at=SERVED_AT)
    with pytest.raises(SpendNotPublishedError) as refused:
        await asyncio.wait_for(publisher.publish(event), 30)  # not started
    assert refused.value.event is event
    async with publisher:
        assert (await publisher.publish(refused.value.event)).event_id == event.event_id
