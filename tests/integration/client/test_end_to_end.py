"""The ad-server client against the real spend consumer and wallet (in-process, the spend
consumer publishing on delivery topics of the test's own): spend published by SpendPublisher is
taken once (a re-send keeps its id), the gate follows the pause the spend causes within the pause
latency, and a new gate rebuilds the same state from its cold start (rules S1, S4, W8)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from adledger_client import DeliveryChange, DeliveryGate, DeliveryKey, SpendPublisher, Topics

from ..spend.conftest import USD, Services, services  # noqa: F401 - `services` is the fixture
from .conftest import WAIT_S

pytestmark = pytest.mark.integration

#: The pause latency the platform answers for: its alert fires when the p99 from a spend event to
#: its pause passes 1 s (deploy/observability/alerts.yaml, AdledgerPauseLatencyHigh).
PAUSE_LATENCY_S = 1.0


@pytest.fixture
def own_delivery_topics() -> bool:
    return True


class Timed:
    """The gate's changes, each with the monotonic time its callback ran."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, datetime, DeliveryChange]] = asyncio.Queue()

    def __call__(self, change: DeliveryChange) -> None:
        self.queue.put_nowait((asyncio.get_running_loop().time(), datetime.now(UTC), change))

    async def next(self) -> tuple[float, datetime, DeliveryChange]:
        try:
            return await asyncio.wait_for(self.queue.get(), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"the gate saw no change within {WAIT_S:.0f}s") from None


async def test_s1_s4_w8_the_gate_follows_the_pause_of_published_spend_within_the_pause_latency_and_a_cold_start_rebuilds_it(
    services: Services,  # noqa: F811 - the fixture imported above
) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 10 * USD)
    await services.balance_until(account, "available_micros", 10 * USD)
    topics = Topics(spend=services.spend_topic, delivery_control=services.control_topic, delivery_state=services.state_topic)
    bootstrap = services.bootstrap

    changes = Timed()
    async with DeliveryGate(bootstrap, topics=topics, on_change=changes, ready_timeout_s=WAIT_S) as gate, SpendPublisher(
        bootstrap, topics=topics, clock=services.clock.now
    ) as publisher:
        assert gate.may_serve(account, "campaign-1")
        first = await publisher.spend(account, "campaign-1", 4 * USD, "USD")
        await publisher.publish(first)  # S1: a re-send keeps its id and is taken once
        await services.balance_until(account, "available_micros", 6 * USD)
        assert gate.may_serve(account, "campaign-1") and changes.queue.empty()

        # W8: the spend that takes the funds to zero pauses the account; the gate follows.
        loop = asyncio.get_running_loop()
        crossing = publisher.event(account, "campaign-1", 6 * USD, "USD")
        sent_at = loop.time()
        await publisher.publish(crossing)
        seen_at, seen_wall, paused = await changes.next()
        followed_s = seen_at - sent_at
        assert (paused.ad_account_id, paused.campaign_id, paused.serving, paused.reason) == (account, None, False, "insufficient_funds")
        assert not gate.may_serve(account, "campaign-1") and not gate.may_serve(account, "campaign-2")
        # From the ad server's publish to its gate's pause, against the latency the platform answers for.
        assert followed_s <= PAUSE_LATENCY_S, f"the gate paused {followed_s * 1000:.0f} ms after the spend was published"
        assert paused.published_at is not None
        gate_lag = seen_wall - paused.published_at
        # Of which the gate's own part: from the decision's publication to its callback.
        assert gate_lag <= timedelta(seconds=PAUSE_LATENCY_S), gate_lag
        print(f"paused {followed_s * 1000:.0f} ms after the spend; the gate read it {gate_lag.total_seconds() * 1000:.0f} ms after it was published")
        await services.balance_until(account, "available_micros", 0)
        pauses = await services.pauses_until(account, lambda rows: len(rows) == 1)
        assert pauses[0]["cause_event_id"] == crossing.event_id

        # Cold start: a new gate, started now, knows the same from delivery.state.v1 alone.
        async with DeliveryGate(bootstrap, topics=topics, ready_timeout_s=WAIT_S) as cold:
            assert not cold.may_serve(account, "campaign-1")
            assert set(cold.paused()) == set(gate.paused()) == {DeliveryKey(account, None)}
            assert cold.paused()[DeliveryKey(account, None)].reason == "insufficient_funds"
            assert cold.paused()[DeliveryKey(account, None)].cold_start

            # W8: money in resumes the account; both gates follow it live.
            await services.pay(account, 5 * USD)
            _, _, resumed = await changes.next()
            assert (resumed.ad_account_id, resumed.serving, resumed.reason) == (account, True, "funds_restored")

            async def cold_gate_resumed() -> None:
                while not cold.may_serve(account, "campaign-1"):
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(cold_gate_resumed(), WAIT_S)
            assert gate.may_serve(account, "campaign-1") and gate.paused() == cold.paused() == {}

    # And a third gate, cold, starts from the resume.
    async with DeliveryGate(bootstrap, topics=topics, ready_timeout_s=WAIT_S) as later:
        assert later.may_serve(account, "campaign-1") and later.paused() == {}
