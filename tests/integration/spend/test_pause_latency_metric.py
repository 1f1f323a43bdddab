"""The spend consumer's pause latency metric (deploy/observability's alert on it): the time from the spend
event that caused a pause (its occurred_at) to the pause's decided_at, observed once per published pause.
The services run in this process on a ManualClock, so the figure is exact (T1)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from .conftest import USD, Services, values

pytestmark = pytest.mark.integration


def _sample(name: str, reason: str) -> float:
    return REGISTRY.get_sample_value(name, {"reason": reason}) or 0.0


async def test_s2_w8_a_pause_is_observed_with_the_time_from_its_cause_to_the_decision(services: Services) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 2 * USD)
    await services.balance_until(account, "available_micros", 2 * USD)
    count_before = _sample("adledger_pause_latency_seconds_count", "insufficient_funds")
    sum_before = _sample("adledger_pause_latency_seconds_sum", "insufficient_funds")

    crossing = services.spend_event(account, 2 * USD)
    # The ad server reports it 1.5 s after it served it: the pause cannot be decided earlier than that.
    services.clock.advance(timedelta(milliseconds=1500))
    await services.send_spends([crossing])

    (decision,) = values(await services.records_for("delivery.control.v1", {account}, expect=1))
    assert (decision["action"], decision["cause_event_id"]) == ("pause", crossing.event_id)
    latency_s = (datetime.fromisoformat(decision["decided_at"]) - crossing.occurred_at).total_seconds()
    assert latency_s == 1.5
    assert _sample("adledger_pause_latency_seconds_count", "insufficient_funds") == count_before + 1
    assert _sample("adledger_pause_latency_seconds_sum", "insufficient_funds") == pytest.approx(sum_before + latency_s)
