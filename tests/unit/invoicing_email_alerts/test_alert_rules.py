"""The arithmetic of low-balance and runway alerts (rules I6, I8, M1, W12), pure: int micros only."""

from __future__ import annotations

from datetime import date

import pytest
from adledger_invoicing.alerts import rules
from hypothesis import given
from hypothesis import strategies as st

USD = 1_000_000


def test_i6_average_daily_spend_is_the_7_day_sum_floor_divided_by_7() -> None:
    assert rules.average_daily_spend([7 * USD] * 7) == 7 * USD
    # Days without spend count as zero: 70 over one day is 10 a day over the week.
    assert rules.average_daily_spend([70 * USD]) == 10 * USD
    # Floor: 10 micros over 7 days is 1 micro a day, not 1.43.
    assert rules.average_daily_spend([10, 0, 0, 0, 0, 0, 0]) == 1
    assert isinstance(rules.average_daily_spend([1, 2, 3]), int)


def test_m1_spend_figures_must_be_int_micros() -> None:
    with pytest.raises(TypeError):
        rules.average_daily_spend([1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        rules.average_daily_spend([1] * 8)


def test_i6_runway_alert_when_the_balance_is_at_most_three_days_of_average_spend() -> None:
    average = 100 * USD
    assert rules.runway_is_low(300 * USD, average)
    assert rules.runway_is_low(299 * USD, average)
    assert not rules.runway_is_low(300 * USD + 1, average)
    assert rules.runway_is_low(0, average) and rules.runway_is_low(-5 * USD, average)
    # No spend, no runway to speak of: never an alert.
    assert not rules.runway_is_low(0, 0)
    assert not rules.runway_is_low(-1, -7)


def test_i6_runway_days_are_whole_days_rounded_down() -> None:
    assert rules.runway_days(299 * USD, 100 * USD) == 2
    assert rules.runway_days(300 * USD, 100 * USD) == 3
    assert rules.runway_days(-1, 100 * USD) == 0
    with pytest.raises(ValueError):
        rules.runway_days(1, 0)


@given(st.lists(st.integers(min_value=0, max_value=10**15), max_size=7), st.integers(min_value=-(10**15), max_value=10**15))
def test_i6_runway_math_agrees_with_exact_rationals(daily: list[int], available: int) -> None:
    from fractions import Fraction

    average = rules.average_daily_spend(daily)
    assert average == int(Fraction(sum(daily), 7))  # floor of a non-negative rational
    exact_low = average > 0 and Fraction(available) <= 3 * Fraction(average)
    assert rules.runway_is_low(available, average) is exact_low
    if average > 0:
        assert rules.runway_days(available, average) * average <= max(available, 0) < (rules.runway_days(available, average) + 1) * average


def test_w12_default_low_balance_threshold_is_half_the_last_payment_and_an_explicit_one_wins() -> None:
    assert rules.low_balance_threshold(None, 1_000 * USD) == 500 * USD
    assert rules.low_balance_threshold(None, 3) == 1  # floor
    assert rules.low_balance_threshold(200 * USD, 1_000 * USD) == 200 * USD
    assert rules.low_balance_threshold(0, 1_000 * USD) == 0
    assert rules.low_balance_threshold(None, None) is None
    assert rules.low_balance_threshold(None, 1_000 * USD, percent=20) == 200 * USD


def test_i6_low_balance_alert_is_strictly_below_a_positive_threshold() -> None:
    assert rules.below_threshold(499 * USD, 500 * USD)
    assert not rules.below_threshold(500 * USD, 500 * USD)
    assert rules.below_threshold(-1, 500 * USD)
    # 0 turns it off; no threshold yet, no alert.
    assert not rules.below_threshold(-100 * USD, 0)
    assert not rules.below_threshold(-100 * USD, None)


def test_i8_one_alert_id_per_owner_kind_and_utc_day() -> None:
    day = date(2026, 11, 21)
    assert rules.alert_id("runway_low", "bc-1", day) == "runway_low:bc-1:2026-11-21"
    assert rules.alert_id("runway_low", "bc-1", day) != rules.alert_id("low_balance", "bc-1", day)
    assert rules.alert_id("runway_low", "bc-1", day) != rules.alert_id("runway_low", "bc-1", date(2026, 11, 22))


def test_i8_amounts_in_e_mails_are_exact() -> None:
    assert rules.format_micros(1_234_500_000, "USD") == "1234.50 USD"
    assert rules.format_micros(1, "USD") == "0.000001 USD"
    assert rules.format_micros(-2_500_000, "EUR") == "-2.50 EUR"
    assert rules.format_micros(0, "USD") == "0.00 USD"
