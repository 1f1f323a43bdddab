"""Ad-account budget caps and how often they may change (rules W9, W10, T1).

A UTC day is the half-open interval from 00:00:00 UTC to the next 00:00:00 UTC. The moment of a
change comes from the injected clock (`adledger_libs.clock.Clock.now()`), never from the wall
clock here, so tests move time instead of sleeping (T1). A moment with another offset is first
converted to UTC; a naive moment is rejected, as its day would be a guess.

Decisions the rules leave open:

- Any accepted change of the cap counts as one change: its kind, its amount or its dates.
  A request that sets the budget the account already has changes nothing, is not counted and
  is never rejected for the daily limit.
- The counter is per ad account and per UTC day, and it starts again at 00:00 UTC.
- Changes made by the system, such as Budget Sync when ABA is enabled (W5), are not counted:
  the limit is on people changing caps.
- A rejected change (by permission or by the limit) is not counted either.
- A user lifts a cap by setting an unlimited budget; "no budget" is only ever the state of an
  account nobody set a budget on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from adledger_wallet.domain.errors import AdAccountNotOwnedError, TooManyCapChangesError
from adledger_wallet.domain.model import AdAccount, Budget, BusinessCenter
from adledger_wallet.domain.roles import Action, User, authorize

#: W10: at most this many cap changes per ad account per UTC day; the next one is rejected.
MAXIMUM_CAP_CHANGES_PER_UTC_DAY = 10


def utc_day_of(moment: datetime) -> date:
    """The UTC calendar day `moment` falls in (T1)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times are timezone-aware (rule T1); a naive datetime has no UTC day")
    return moment.astimezone(UTC).date()


def utc_day_starts_at(utc_day: date) -> datetime:
    return datetime(utc_day.year, utc_day.month, utc_day.day, tzinfo=UTC)


def utc_day_ends_at(utc_day: date) -> datetime:
    """The first instant after `utc_day`: the day is `[utc_day_starts_at, utc_day_ends_at)`."""
    return utc_day_starts_at(utc_day) + timedelta(days=1)


def count_changes_on_utc_day(change_moments: Iterable[datetime], utc_day: date) -> int:
    """How many of the recorded change moments fall on `utc_day`."""
    return sum(1 for moment in change_moments if utc_day_of(moment) == utc_day)


def check_cap_change(changes_today_count: int, *, ad_account_id: str, utc_day: date) -> None:
    """Reject the change if the account's cap was already changed the maximum number of times today (W10).

    `changes_today_count` is the number of changes already accepted on `utc_day`, before this one.
    """
    if type(changes_today_count) is not int or changes_today_count < 0:
        raise ValueError(f"changes_today_count {changes_today_count!r} is not a count")
    if changes_today_count >= MAXIMUM_CAP_CHANGES_PER_UTC_DAY:
        raise TooManyCapChangesError(ad_account_id, utc_day, changes_today_count, MAXIMUM_CAP_CHANGES_PER_UTC_DAY)


@dataclass(frozen=True, slots=True)
class BudgetChange:
    """The outcome of a budget-cap change request."""

    #: The account as it will be.
    ad_account: AdAccount
    budget_before: Budget | None
    #: The UTC day the change belongs to.
    utc_day: date
    #: True when the budget changed; the adapter records a change (for W10) only then.
    counted: bool


def plan_budget_change(
    user: User,
    business_center: BusinessCenter,
    ad_account: AdAccount,
    new_budget: Budget,
    *,
    changes_today_count: int,
    moment: datetime,
) -> BudgetChange:
    """Check a user's change of an ad account's budget cap (W9, W10) and return the result.

    `changes_today_count` is the number of changes already accepted for this account on the UTC
    day of `moment`, read in the same database transaction that will record this one.
    """
    authorize(user, business_center, Action.CHANGE_BUDGET)
    if ad_account.business_center_id != business_center.id:
        raise AdAccountNotOwnedError(ad_account.id, business_center.id)
    utc_day = utc_day_of(moment)
    if new_budget == ad_account.budget:
        return BudgetChange(ad_account, ad_account.budget, utc_day, counted=False)
    check_cap_change(changes_today_count, ad_account_id=ad_account.id, utc_day=utc_day)
    return BudgetChange(replace(ad_account, budget=new_budget), ad_account.budget, utc_day, counted=True)
