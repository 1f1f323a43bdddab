"""Budget caps change at most 10 times per ad account per UTC day (W10, W9, T1)."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from adledger_libs.clock import ManualClock
from adledger_wallet.domain.budget_caps import (
    MAXIMUM_CAP_CHANGES_PER_UTC_DAY,
    check_cap_change,
    count_changes_on_utc_day,
    plan_budget_change,
    utc_day_ends_at,
    utc_day_of,
)
from adledger_wallet.domain.errors import AdAccountNotOwnedError, PermissionDeniedError, TooManyCapChangesError
from adledger_wallet.domain.model import Budget
from adledger_wallet.domain.roles import Role
from tests.unit.wallet.factories import ad_account, business_center, user

FINANCE_MANAGER = user("u-1", "bc-1", Role.FINANCE_MANAGER)


def test_w10_ten_cap_changes_in_a_utc_day_are_accepted() -> None:
    assert MAXIMUM_CAP_CHANGES_PER_UTC_DAY == 10
    for changes_today_count in range(10):
        check_cap_change(changes_today_count, ad_account_id="acc-1", utc_day=date(2026, 3, 1))


def test_w10_eleventh_cap_change_in_a_utc_day_is_rejected() -> None:
    with pytest.raises(TooManyCapChangesError) as caught:
        check_cap_change(10, ad_account_id="acc-1", utc_day=date(2026, 3, 1))
    error = caught.value
    assert (error.ad_account_id, error.utc_day, error.changes_today_count, error.maximum_changes_count) == (
        "acc-1",
        date(2026, 3, 1),
        10,
        10,
    )


def test_w10_a_utc_day_runs_from_midnight_to_midnight_utc() -> None:
    assert utc_day_of(datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)) == date(2026, 3, 1)
    assert utc_day_of(datetime(2026, 3, 2, 0, 0, tzinfo=UTC)) == date(2026, 3, 2)
    assert utc_day_ends_at(date(2026, 3, 1)) == datetime(2026, 3, 2, tzinfo=UTC)


def test_w10_a_moment_with_another_offset_counts_on_its_utc_day() -> None:
    # 01:00 on 2 March in UTC+2 is 23:00 on 1 March in UTC.
    assert utc_day_of(datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))) == date(2026, 3, 1)


def test_t1_a_naive_moment_has_no_utc_day() -> None:
    with pytest.raises(ValueError, match="T1"):
        utc_day_of(datetime(2026, 3, 1, 12, 0))


def test_w10_the_count_starts_again_on_the_next_utc_day() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    change_moments = []
    for _ in range(10):
        change_moments.append(clock.now())
        clock.advance(timedelta(minutes=30))
    today = utc_day_of(clock.now())
    assert count_changes_on_utc_day(change_moments, today) == 10
    with pytest.raises(TooManyCapChangesError):
        check_cap_change(count_changes_on_utc_day(change_moments, today), ad_account_id="acc-1", utc_day=today)

    clock.set(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    tomorrow = utc_day_of(clock.now())
    assert count_changes_on_utc_day(change_moments, tomorrow) == 0
    check_cap_change(count_changes_on_utc_day(change_moments, tomorrow), ad_account_id="acc-1", utc_day=tomorrow)


def test_w10_a_budget_change_is_applied_and_counted() -> None:
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    change = plan_budget_change(
        FINANCE_MANAGER, business_center(), ad_account("acc-1"), Budget.daily(5), changes_today_count=3, moment=moment
    )
    assert change.ad_account.budget == Budget.daily(5)
    assert change.budget_before is None
    assert change.utc_day == date(2026, 3, 1)
    assert change.counted


def test_w10_eleventh_budget_change_of_an_account_is_rejected() -> None:
    with pytest.raises(TooManyCapChangesError):
        plan_budget_change(
            FINANCE_MANAGER,
            business_center(),
            ad_account("acc-1"),
            Budget.daily(5),
            changes_today_count=10,
            moment=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        )


def test_w10_setting_the_same_budget_is_no_change_and_is_not_counted() -> None:
    account = ad_account("acc-1", budget=Budget.monthly(5))
    change = plan_budget_change(
        FINANCE_MANAGER,
        business_center(),
        account,
        Budget.monthly(5),
        changes_today_count=10,
        moment=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )
    assert change.ad_account is account
    assert not change.counted


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ANALYST])
def test_w9_only_finance_manager_or_admin_changes_a_budget(role: Role) -> None:
    with pytest.raises(PermissionDeniedError):
        plan_budget_change(
            user("u-2", "bc-1", role),
            business_center(),
            ad_account("acc-1"),
            Budget.daily(5),
            changes_today_count=0,
            moment=datetime(2026, 3, 1, tzinfo=UTC),
        )


def test_w9_a_budget_change_needs_an_account_of_the_same_business_center() -> None:
    with pytest.raises(AdAccountNotOwnedError):
        plan_budget_change(
            FINANCE_MANAGER,
            business_center(),
            ad_account("acc-9", business_center_id="bc-2"),
            Budget.daily(5),
            changes_today_count=0,
            moment=datetime(2026, 3, 1, tzinfo=UTC),
        )
