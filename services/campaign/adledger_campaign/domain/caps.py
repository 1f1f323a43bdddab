"""Ad-account budget caps and how often they may change (rules W5, W10, T1).

A UTC day is the half-open interval from 00:00:00 UTC to the next 00:00:00 UTC
(`adledger_libs.clock.utc_day_of`); the moment of a change comes from the injected clock.

Decisions the rules leave open:

- Any accepted change of the cap counts as one change: its kind, its amount or its dates.
  A request that sets the cap the account already has changes nothing, is not counted and is
  never rejected for the daily limit.
- The counter is per ad account and per UTC day, and it starts again at 00:00 UTC.
- Changes made by the system, Budget Sync when ABA is enabled (W5), are not counted: the limit
  is on people changing caps.
- A rejected change (by permission or by the limit) is not counted either.
- A user lifts a cap by setting an unlimited cap; "no cap" is only ever the state of an account
  nobody set one on. A cap of zero is allowed (Budget Sync gives it to an account with nothing
  available; it stops the account's spend, S3).
- W9: who may change caps is the platform's one table (`adledger_auth.roles`,
  `Action.CHANGE_BUDGET`: Admins and Finance Managers of the account's Business Center, only
  Admins where it has no Finance Manager); the core checks the caller against it before it plans
  a change here, so this module decides only the W10 limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from adledger_libs.clock import utc_day_of
from adledger_libs.refusals import Refusal

#: W10: at most this many cap changes per ad account per UTC day; the next one is rejected.
MAXIMUM_CAP_CHANGES_PER_UTC_DAY = 10


class CapKind(StrEnum):
    MONTHLY = "monthly"
    DAILY = "daily"
    CUSTOM = "custom"
    UNLIMITED = "unlimited"


class InvalidCapError(Refusal, ValueError):
    """A cap is not well formed for its kind (W10). A refusal: a 422 on the API, and a record
    that carries such a cap (a Budget Sync's) is dead-lettered with the reason, never a crash (S5)."""


class TooManyCapChangesError(Exception):
    """An ad account's cap was already changed the maximum number of times this UTC day (W10)."""

    def __init__(self, ad_account_id: str, utc_day: date, changes_today_count: int) -> None:
        super().__init__(
            f"the budget cap of ad account {ad_account_id} was already changed {changes_today_count} times on "
            f"{utc_day.isoformat()} (UTC); at most {MAXIMUM_CAP_CHANGES_PER_UTC_DAY} changes are allowed per UTC day"
        )
        self.ad_account_id = ad_account_id
        self.utc_day = utc_day
        self.changes_today_count = changes_today_count


@dataclass(frozen=True, slots=True)
class Cap:
    """An ad account's budget cap (W10), in micros of the account's currency."""

    kind: CapKind
    amount_micros: int | None
    starts_on: date | None = None
    ends_on: date | None = None

    def __post_init__(self) -> None:
        if self.kind is CapKind.UNLIMITED:
            if self.amount_micros is not None:
                raise InvalidCapError("an unlimited cap has no amount")
        elif type(self.amount_micros) is not int or self.amount_micros < 0:
            raise InvalidCapError(f"a {self.kind} cap needs an amount of zero or more integer micros (M1)")
        if self.kind is CapKind.CUSTOM:
            if self.starts_on is None or self.ends_on is None:
                raise InvalidCapError("a custom cap needs a date range")
            if self.starts_on > self.ends_on:
                raise InvalidCapError(f"the range {self.starts_on} to {self.ends_on} ends before it starts")
        elif self.starts_on is not None or self.ends_on is not None:
            raise InvalidCapError(f"only a custom cap has a date range, not a {self.kind} one")


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
        raise TooManyCapChangesError(ad_account_id, utc_day, changes_today_count)


@dataclass(frozen=True, slots=True)
class CapChange:
    """The outcome of a cap-change request."""

    cap: Cap
    cap_before: Cap | None
    utc_day: date
    #: True when the cap changed; only then is a change recorded (for W10) and published.
    counted: bool


def plan_cap_change(
    *, ad_account_id: str, current: Cap | None, new: Cap, changes_today_count: int, moment: datetime
) -> CapChange:
    """Check a change of an ad account's cap against the daily limit (W10) and return the result.

    `changes_today_count` is the number of changes already accepted for this account on the UTC
    day of `moment`, read in the same database transaction that will record this one. The caller
    was already allowed to change caps (W9).
    """
    utc_day = utc_day_of(moment)
    if new == current:
        return CapChange(new, current, utc_day, counted=False)
    check_cap_change(changes_today_count, ad_account_id=ad_account_id, utc_day=utc_day)
    return CapChange(new, current, utc_day, counted=True)


def budget_sync_cap(budget_kind: str | None, budget_micros: int | None) -> Cap | None:
    """The cap Budget Sync (W5) set, as the wallet published it in `AutomaticBalanceAllocationEnabled`."""
    if budget_kind is None:
        return None
    kind = CapKind(budget_kind)
    return Cap(kind, None if kind is CapKind.UNLIMITED else budget_micros)
