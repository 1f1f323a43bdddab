"""DeliveryGate on the real broker (rules S4, W8, S3): the cold start from delivery.state.v1, then
delivery.control.v1 and delivery.state.v1 live, with re-sends and bad records."""

from __future__ import annotations

import asyncio

import pytest
from adledger_client import DeliveryGate, DeliveryKey, NotReadyError, Topics

from ..conftest import Stack
from .conftest import Changes, Platform, summary

pytestmark = pytest.mark.integration


async def test_s4_a_cold_start_knows_what_may_serve_before_start_returns(stack: Stack, topics: Topics, platform: Platform) -> None:
    # What the platform decided before the ad server started, newest last per key.
    await platform.state("paused-then-resumed", None, False, "insufficient_funds")
    await platform.state("paused-then-resumed", None, True, "funds_restored")
    await platform.state("acc-1", "budget-spent", False, "campaign_budget_reached")
    await platform.state("acc-2", None, False, "insufficient_funds")
    await platform.state("acc-3", "ended", False, "campaign_ended")
    await platform.forget("acc-3", "ended")
    # Records that do not fit are skipped, never trusted, never fatal.
    await platform.raw(topics.delivery_state, b"acc-4", b'{"ad_account_id": "acc-4", "campaign_id": null, "serving": "no"}')
    await platform.raw(topics.delivery_state, b"not-acc-5", b'{"ad_account_id": "acc-5", "campaign_id": null, "serving": false, '
                       b'"reason": "manual", "updated_at": "2026-11-21T09:00:00Z"}')
    await platform.raw(topics.delivery_state, b"acc-6", b"\xff not json")

    changes = Changes()
    gate = DeliveryGate(stack.kafka_bootstrap_servers, topics=topics, on_change=changes, ready_timeout_s=30)
    assert not gate.may_serve("anything", "at-all"), "a gate that has not read its cold start serves nothing"
    async with gate:
        assert gate.ready
        # No wait: what was there when the gate started is known when start() returns.
        assert gate.may_serve("paused-then-resumed", "c")
        assert not gate.may_serve("acc-1", "budget-spent") and gate.may_serve("acc-1", "other")
        assert not gate.may_serve("acc-2", "any")
        assert gate.may_serve("acc-3", "ended"), "a tombstone forgets the key"
        assert gate.may_serve("acc-4", "c") and gate.may_serve("acc-5", "c")
        assert set(gate.paused()) == {DeliveryKey("acc-1", "budget-spent"), DeliveryKey("acc-2", None)}
        assert gate.skipped_records == 3
        assert all(change.cold_start and change.source == "state" for change in changes.seen), changes.seen
        assert {(c.ad_account_id, c.campaign_id, c.serving) for c in changes.seen if not c.serving} >= {
            ("acc-1", "budget-spent", False), ("acc-2", None, False)
        }
    assert not gate.ready and not gate.may_serve("paused-then-resumed", "c"), "a stopped gate serves nothing"


async def test_w8_s4_the_gate_follows_pauses_and_resumes_live_with_a_callback_on_every_change(
    stack: Stack, topics: Topics, platform: Platform
) -> None:
    changes = Changes()
    async with DeliveryGate(stack.kafka_bootstrap_servers, topics=topics, on_change=changes, ready_timeout_s=30) as gate:
        assert changes.seen == [] and gate.may_serve("acc-1", "c1")
        # The decision arrives before its state: the gate pauses at once.
        pause = await platform.decide("acc-1", None, "pause", "insufficient_funds")
        assert summary(await changes.next()) == ("acc-1", None, False, "insufficient_funds", "control", False)
        assert not gate.may_serve("acc-1", "c1") and not gate.may_serve("acc-1", "c2")
        await platform.state("acc-1", None, False, "insufficient_funds")
        # A resume on delivery.control.v1 alone does not resume: delivery.state.v1 still says paused.
        # (A later decision on the same partition, keyed by the same account, shows it was read.)
        await platform.decide("acc-1", None, "resume", "funds_restored")
        await platform.decide("acc-1", "c8", "pause", "manual")
        assert summary(await changes.next()) == ("acc-1", "c8", False, "manual", "control", False)
        assert not gate.may_serve("acc-1", "c1")
        # A campaign of another account pauses on its own key meanwhile, from delivery.state.v1 alone.
        await platform.state("acc-2", "c9", False, "campaign_budget_reached")
        assert summary(await changes.next()) == ("acc-2", "c9", False, "campaign_budget_reached", "state", False)
        await platform.state("acc-1", None, True, "funds_restored")
        assert summary(await changes.next()) == ("acc-1", None, True, "funds_restored", "state", False)
        assert gate.may_serve("acc-1", "c1") and not gate.may_serve("acc-2", "c9") and gate.may_serve("acc-2", "c1")

        # The platform's relay re-sends the old pause (same event id, a higher offset): ignored. A
        # later decision on the same partition (same account key) shows the re-send was read.
        await platform.send(topics.delivery_control, "acc-1", pause)
        await platform.decide("acc-1", "c3", "pause", "manual")
        assert summary(await changes.next()) == ("acc-1", "c3", False, "manual", "control", False)
        assert gate.may_serve("acc-1", "c1") and not gate.may_serve("acc-1", "c3")
        assert changes.pending() == []


async def test_s4_a_bad_record_on_the_live_topics_is_skipped_and_the_gate_goes_on(
    stack: Stack, topics: Topics, platform: Platform
) -> None:
    changes = Changes()
    async with DeliveryGate(stack.kafka_bootstrap_servers, topics=topics, on_change=changes, ready_timeout_s=30) as gate:
        await platform.raw(topics.delivery_control, b"acc-1", b'{"ad_account_id": "acc-1", "campaign_id": null, "action": "stop"}')
        await platform.raw(topics.delivery_control, b"acc-1", b"[1, 2")
        # Another kind of record on the topic (the contract may add event types) is left alone.
        await platform.raw(topics.delivery_control, b"acc-1", b"{}", [("event-type", b"SomethingNew")])
        await platform.decide("acc-1", None, "pause", "manual")
        assert summary(await changes.next()) == ("acc-1", None, False, "manual", "control", False)
        assert gate.skipped_records == 2 and gate.ready and gate.failure is None


async def test_a_callback_that_fails_does_not_stop_the_gate(stack: Stack, topics: Topics, platform: Platform) -> None:
    seen: list[str] = []

    def failing(change: object) -> None:
        seen.append(str(change))
        raise RuntimeError("a bug in the ad server's callback")

    async with DeliveryGate(stack.kafka_bootstrap_servers, topics=topics, on_change=failing, ready_timeout_s=30) as gate:
        await platform.decide("acc-1", None, "pause", "manual")
        await platform.decide("acc-2", None, "pause", "manual")

        async def both_paused() -> None:
            while gate.may_serve("acc-1", "c") or gate.may_serve("acc-2", "c"):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(both_paused(), 30)
        assert len(seen) == 2 and gate.ready


async def test_a_missing_topic_fails_the_start_within_its_timeout(stack: Stack, topics: Topics) -> None:
    missing = Topics(delivery_state=topics.delivery_state + "-missing", delivery_control=topics.delivery_control)
    gate = DeliveryGate(stack.kafka_bootstrap_servers, topics=missing, ready_timeout_s=2)
    with pytest.raises(NotReadyError, match="missing"):
        await asyncio.wait_for(gate.start(), 30)
    assert not gate.ready and not gate.may_serve("acc-1", "c")
