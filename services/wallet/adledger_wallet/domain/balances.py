"""Real and virtual balances, prepayment invoices, day closes and payouts (rules W11–W14, T1).

All figures are integers of micros in one currency, taken from the ledger. The functions here
only combine them; reading them consistently (in one database transaction) is the adapter's job.

Decisions the rules leave open:

- W11: "paid money in" is the sum of posted transfers of paid invoices and payments into the
  owner; "posted spend and fees" is the sum of posted (not pending) charges out of it. Open
  holds are the pending amounts not yet posted or voided (M4). Vouchers are ad credits, not
  paid money, so they count in neither balance.
- W12 rounding: the default threshold is `percent` of the last payment, rounded up to a whole
  micro (`ceil(last_payment_micros * percent / 100)`, in integers). For an integer virtual
  balance `v`, `v < ceil(x)` is exactly `v < x`, so rounding up makes the integer test give the
  same answer as the exact fraction would: no virtual balance is misjudged by the rounding.
- W12: "drops below" is strictly below. With no payment received yet and no explicit threshold,
  the threshold is 0, so a prepayment invoice is asked for once the virtual balance is negative.
  An explicit `prepayment_threshold_micros` on the Business Center wins over the percentage.
- W13: the close of UTC day D is the instant D+1 00:00:00 UTC. A moment belongs to the day it
  falls in (a half-open interval), so a moment at exactly 00:00:00 belongs to the new day and
  the close at that instant is the previous day's. A snapshot holds the ledger figures of the
  transfers timestamped before the close instant; a late event posted after midnight belongs to
  the new day, and a written snapshot is never rewritten (corrections show in later days).
  A service that was down at one or more closes takes each missed close in order when it comes
  back (`day_closes_due`), so the history has no gaps.
- W14 (the payout gate) is the wallet's: `domain/payouts.py` (pure) and its store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from adledger_libs.clock import utc_day_ends_at, utc_day_of
from adledger_wallet.domain.model import BusinessCenter, require_micros

#: W12: the default prepayment threshold is this percentage of the last payment received.
DEFAULT_PREPAYMENT_THRESHOLD_PERCENT = 50


@dataclass(frozen=True, slots=True)
class LedgerFigures:
    """The ledger totals one balance owner's real and virtual balances are made of (W11)."""

    paid_in_micros: int
    posted_spend_micros: int
    posted_fees_micros: int
    open_holds_micros: int

    def __post_init__(self) -> None:
        # Each figure is a sum of strictly positive transfers, so none can be negative.
        for figure_micros in (
            self.paid_in_micros,
            self.posted_spend_micros,
            self.posted_fees_micros,
            self.open_holds_micros,
        ):
            require_micros(figure_micros, minimum_micros=0)


@dataclass(frozen=True, slots=True)
class Balances:
    real_micros: int
    virtual_micros: int


def real_balance_micros(*, paid_in_micros: int, posted_spend_micros: int, posted_fees_micros: int) -> int:
    """W11: real balance = paid money in − (posted spend and fees); open holds do not count."""
    return paid_in_micros - (posted_spend_micros + posted_fees_micros)


def virtual_balance_micros(*, real_micros: int, open_holds_micros: int) -> int:
    """W11: virtual balance = real balance − open holds."""
    return real_micros - open_holds_micros


def balances_from_ledger(figures: LedgerFigures) -> Balances:
    real_micros = real_balance_micros(
        paid_in_micros=figures.paid_in_micros,
        posted_spend_micros=figures.posted_spend_micros,
        posted_fees_micros=figures.posted_fees_micros,
    )
    return Balances(
        real_micros, virtual_balance_micros(real_micros=real_micros, open_holds_micros=figures.open_holds_micros)
    )


def default_prepayment_threshold_micros(
    last_payment_micros: int | None, percent: int = DEFAULT_PREPAYMENT_THRESHOLD_PERCENT
) -> int:
    """W12: `percent` of the last payment, rounded up to a whole micro; 0 before any payment."""
    if last_payment_micros is None:
        return 0
    require_micros(last_payment_micros, minimum_micros=0)
    if type(percent) is not int or not 0 <= percent <= 100:
        raise ValueError(f"prepayment threshold percent {percent!r} is not an integer from 0 to 100")
    # Floor division of the negated product is the integer ceiling, with no float in between.
    return -(-(last_payment_micros * percent) // 100)


def prepayment_threshold_micros(business_center: BusinessCenter) -> int:
    """The Business Center's prepayment threshold: its explicit one, else the default (W12)."""
    if business_center.prepayment_threshold_micros is not None:
        return business_center.prepayment_threshold_micros
    return default_prepayment_threshold_micros(
        business_center.last_payment_micros, business_center.prepayment_threshold_percent
    )


def prepayment_invoice_needed(virtual_micros: int, threshold_micros: int, open_prepayment_invoice: bool) -> bool:
    """W12: ask for a prepayment once the virtual balance is below the threshold, one invoice at a time."""
    return not open_prepayment_invoice and virtual_micros < threshold_micros


def day_close_for(moment: datetime) -> date:
    """W13: the UTC day whose close will include `moment` (the UTC day it falls in)."""
    return utc_day_of(moment)


def day_close_at(day: date) -> datetime:
    """W13: the instant the UTC day `day` closes, 00:00:00 UTC of the next day."""
    return utc_day_ends_at(day)


def next_day_close_at(moment: datetime) -> datetime:
    """W13: the first day close strictly after `moment`; at exactly midnight that is the next midnight."""
    return day_close_at(day_close_for(moment))


def day_closes_due(last_closed_day: date, now: datetime) -> list[date]:
    """W13: the days after `last_closed_day` whose close instant has come by `now`, oldest first.

    Usually empty or one day; after downtime it lists every missed close, so none is skipped.
    """
    today = utc_day_of(now)
    due: list[date] = []
    day = last_closed_day + timedelta(days=1)
    while day < today:
        due.append(day)
        day += timedelta(days=1)
    return due


@dataclass(frozen=True, slots=True)
class DailyBalanceSnapshot:
    """W13: one balance owner's balances at the close of one UTC day."""

    owner_id: str
    currency: str
    day: date
    #: The close instant; the figures include every transfer timestamped before it.
    closed_at: datetime
    real_micros: int
    virtual_micros: int


def snapshot_at_day_close(owner_id: str, currency: str, day: date, figures: LedgerFigures) -> DailyBalanceSnapshot:
    balances = balances_from_ledger(figures)
    return DailyBalanceSnapshot(
        owner_id, currency, day, day_close_at(day), balances.real_micros, balances.virtual_micros
    )
