"""Ad-account budget caps: how often they change (W10), Budget Sync's (W5), UTC days (T1). Who may change them
(W9) is the platform's one table, checked by the core: tests/unit/campaign/test_campaign_use_cases.py."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from adledger_campaign.domain.caps import (
    MAXIMUM_CAP_CHANGES_PER_UTC_DAY,
    Cap,
    CapChange,
    CapKind,
    InvalidCapError,
    TooManyCapChangesError,
    budget_sync_cap,
    check_cap_change,
    count_changes_on_utc_day,
    plan_cap_change,
)
from adledger_libs.clock import ManualClock, utc_day_ends_at, utc_day_of, utc_month_ends_at

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


DAILY_FIVE = Cap(CapKind.DAILY, 5)


def _plan(*, current: Cap | None = None, new: Cap = DAILY_FIVE, count: int = 0) -> CapChange:
    return plan_cap_change(ad_account_id="acc-1", current=current, new=new, changes_today_count=count, moment=NOON)


def test_w10_ten_cap_changes_in_a_utc_day_are_accepted() -> None:
    assert MAXIMUM_CAP_CHANGES_PER_UTC_DAY == 10
    for changes_today_count in range(10):
        check_cap_change(changes_today_count, ad_account_id="acc-1", utc_day=date(2026, 3, 1))


def test_w10_eleventh_cap_change_in_a_utc_day_is_rejected() -> None:
    with pytest.raises(TooManyCapChangesError) as caught:
        check_cap_change(10, ad_account_id="acc-1", utc_day=date(2026, 3, 1))
    assert (caught.value.ad_account_id, caught.value.utc_day, caught.value.changes_today_count) == ("acc-1", date(2026, 3, 1), 10)
    with pytest.raises(TooManyCapChangesError):
        _plan(count=10)


def test_w10_t1_a_utc_day_runs_from_midnight_to_midnight_utc() -> None:
    assert utc_day_of(datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)) == date(2026, 3, 1)
    assert utc_day_of(datetime(2026, 3, 2, 0, 0, tzinfo=UTC)) == date(2026, 3, 2)
    assert utc_day_ends_at(date(2026, 3, 1)) == datetime(2026, 3, 2, tzinfo=UTC)
    # 01:00 on 2 March in UTC+2 is 23:00 on 1 March in UTC.
    assert utc_day_of(datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))) == date(2026, 3, 1)


def test_t1_a_naive_moment_has_no_utc_day() -> None:
    with pytest.raises(ValueError, match="T1"):
        utc_day_of(datetime(2026, 3, 1, 12, 0))


def test_c4_t1_the_end_of_the_month_is_the_first_instant_of_the_next_utc_month() -> None:
    assert utc_month_ends_at(datetime(2026, 3, 31, 23, 59, tzinfo=UTC)) == datetime(2026, 4, 1, tzinfo=UTC)
    assert utc_month_ends_at(datetime(2026, 12, 5, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_w10_the_count_starts_again_on_the_next_utc_day() -> None:
    clock = ManualClock(NOON)
    moments = []
    for _ in range(10):
        moments.append(clock.now())
        clock.advance(timedelta(minutes=30))
    today = utc_day_of(clock.now())
    assert count_changes_on_utc_day(moments, today) == 10
    with pytest.raises(TooManyCapChangesError):
        check_cap_change(count_changes_on_utc_day(moments, today), ad_account_id="acc-1", utc_day=today)
    clock.set(datetime(2026, 3, 2, tzinfo=UTC))
    tomorrow = utc_day_of(clock.now())
    assert count_changes_on_utc_day(moments, tomorrow) == 0
    check_cap_change(0, ad_account_id="acc-1", utc_day=tomorrow)


def test_w10_a_change_is_applied_and_counted_the_same_cap_is_not() -> None:
    change = _plan(count=3)
    assert (change.cap, change.cap_before, change.utc_day, change.counted) == (Cap(CapKind.DAILY, 5), None, date(2026, 3, 1), True)
    same = _plan(current=Cap(CapKind.MONTHLY, 5), new=Cap(CapKind.MONTHLY, 5), count=10)
    assert not same.counted, "setting the cap it already has is no change, even after ten"


def test_w10_caps_are_monthly_daily_custom_or_unlimited_and_well_formed() -> None:
    Cap(CapKind.CUSTOM, 5, date(2026, 3, 1), date(2026, 3, 31))
    Cap(CapKind.UNLIMITED, None)
    for bad in (
        lambda: Cap(CapKind.UNLIMITED, 5),
        lambda: Cap(CapKind.DAILY, None),
        lambda: Cap(CapKind.DAILY, -1),
        lambda: Cap(CapKind.DAILY, 1.5),  # type: ignore[arg-type]
        lambda: Cap(CapKind.CUSTOM, 5),
        lambda: Cap(CapKind.CUSTOM, 5, date(2026, 3, 2), date(2026, 3, 1)),
        lambda: Cap(CapKind.MONTHLY, 5, date(2026, 3, 1), date(2026, 3, 2)),
    ):
        with pytest.raises(InvalidCapError):
            bad()


def test_w5_budget_sync_sets_the_monthly_cap_the_wallet_computed() -> None:
    assert budget_sync_cap("monthly", 7_000_000) == Cap(CapKind.MONTHLY, 7_000_000)
    assert budget_sync_cap("unlimited", None) == Cap(CapKind.UNLIMITED, None)
    assert budget_sync_cap(None, None) is None


def test_s5_a_budget_sync_cap_the_rules_refuse_is_a_record_fault_not_a_crash() -> None:
    """Found by the hostile-records fuzz: the wallet's `AutomaticBalanceAllocationEnabled` may name a
    daily cap without an amount (the contract allows null); the cap's refusal must be one the
    consumer dead-letters (S5), not an error that stops the campaign service's consumer for good."""
    from adledger_libs.consumer import RECORD_FAULTS

    from adledger_campaign.domain.caps import budget_sync_cap

    for kind, amount in (("daily", None), ("monthly", None), ("custom", 5)):
        with pytest.raises(RECORD_FAULTS):
            budget_sync_cap(kind, amount)
