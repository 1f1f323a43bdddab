"""The pure rules of sends and user balances (U1-U6), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from adledger_sends.domain import sends as domain
from adledger_sends.domain.sends import Send

NOW = datetime(2026, 11, 21, 9, tzinfo=UTC)


def _send(**changes: object) -> Send:
    base = dict(
        id="send-1", business_center_id="bc", campaign_id="c", sender_user_id="ann", via="user", item_kind="egift",
        description="Coffee", charged_to="user_balance", funding_source_id=None, add_funds=False,
        price_micros=10, charged_micros=10, final_cost_micros=None, currency="USD", state="charged", version=1,
        created_at=NOW, updated_at=NOW,
    )
    return Send(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(("schedule", "start", "following"), [
    ("daily", datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)),
    ("weekly", datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)),
    ("monthly", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
])
def test_u1_t1_schedule_periods_start_in_utc(schedule: domain.Schedule, start: datetime, following: datetime) -> None:
    assert domain.period_start(schedule, NOW) == start
    assert domain.next_period_start(schedule, start) == following


def test_u1_t1_a_monthly_period_after_december_is_january() -> None:
    assert domain.next_period_start("monthly", datetime(2026, 12, 1, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_u6_refresh_adds_what_was_used_rollover_adds_the_budget() -> None:
    assert domain.period_amount("refresh", 50, 18) == 32
    assert domain.period_amount("refresh", 50, 50) == 0
    assert domain.period_amount("refresh", 50, 70) == 0, "a balance above its budget is not taken back"
    assert domain.period_amount("rollover", 20, 20) == 20
    with pytest.raises(domain.InvalidSendsValueError):
        domain.period_amount("rollover", 2**62, 2**62)


def test_m5_charge_ids_are_one_per_cause_and_fit_the_invoicing_contract() -> None:
    one = domain.charge_id("balance", "bc" * 64, "ann" * 40, "2026-12-01")
    assert one == domain.charge_id("balance", "bc" * 64, "ann" * 40, "2026-12-01") and len(one) <= 48
    assert one != domain.charge_id("balance", "bc" * 64, "ann" * 40, "2027-01-01")
    assert domain.user_balance_owner_id("a", "b:c") != domain.user_balance_owner_id("a:b", "c")


def test_u3_a_short_source_needs_add_funds_unless_opted_out() -> None:
    assert domain.check_source_covers(available_micros=10, price_micros=10, add_funds=False,
                                      add_funds_allowed=False) is False
    with pytest.raises(domain.InsufficientFundsError):
        domain.check_source_covers(available_micros=9, price_micros=10, add_funds=False, add_funds_allowed=True)
    assert domain.check_source_covers(available_micros=9, price_micros=10, add_funds=True, add_funds_allowed=True)
    with pytest.raises(domain.AddFundsDisabledError):
        domain.check_source_covers(available_micros=9, price_micros=10, add_funds=True, add_funds_allowed=False)


def test_u4_only_an_integrations_send_waits_for_approval_and_a_rejected_one_is_never_charged() -> None:
    assert domain.first_state(via="integration", require_approval=True) == "awaiting_approval"
    assert domain.first_state(via="integration", require_approval=False) == "charged"
    assert domain.first_state(via="user", require_approval=True) == "charged"
    waiting = _send(state="awaiting_approval", charged_micros=0, via="integration")
    assert domain.decide(waiting, approve=True, now=NOW).charged_micros == 10
    rejected = domain.decide(waiting, approve=False, now=NOW)
    assert (rejected.state, rejected.charged_micros) == ("rejected", 0)
    with pytest.raises(domain.SendStateError):
        domain.decide(rejected, approve=True, now=NOW)


def test_u5_the_final_cost_difference_is_charged_or_given_back_once() -> None:
    after, difference = domain.final_cost(_send(), 13, NOW)
    assert (after.state, after.charged_micros, difference) == ("adjusted", 13, 3)
    assert domain.final_cost(_send(), 7, NOW)[1] == -3
    with pytest.raises(domain.SendStateError):
        domain.final_cost(after, 20, NOW)
    with pytest.raises(domain.ApprovalRequiredError):
        domain.final_cost(_send(state="awaiting_approval"), 20, NOW)
