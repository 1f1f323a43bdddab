"""Campaign budgets, prepaid bookings and ad-account budget caps (rules S3, W10, C1, C5): pure.

The spend consumer keeps each campaign and cap from the campaign service's snapshots and counts
the spend it posts against them. Days are UTC days of the injected clock at posting (T1): a
daily budget counts the spend posted that day, a monthly cap the spend posted in that calendar
month, a custom cap the spend posted from its first to its last day (both included).

- A drawdown campaign reaches its budget when its spend (lifetime, or the day's for a daily
  budget) is at or above `budget_micros`.
- A prepaid campaign reaches it when what it delivered is above zero and at or above
  `booked_micros` (the money held for it); spend up to the booking is taken from the booking,
  beyond it in W7 order.
- An ad account reaches its cap when the spend of the cap's current period is at or above the
  cap; a custom cap outside its days, or an unlimited one, never is.
- A campaign's status is a cause of its own: `paused` by its user (or with no cause given) is
  `manual`; `draft`, `awaiting_payment` and `ended` are `campaign_draft`,
  `campaign_awaiting_payment` and `campaign_ended`. A `paused` status with cause `budget` or
  `funds` is the campaign service echoing a pause this consumer decided, not a new cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from adledger_spend_consumer.domain import delivery
from adledger_spend_consumer.domain.delivery import CauseChange

STATUS_CAUSES = frozenset(
    {delivery.MANUAL, delivery.CAMPAIGN_DRAFT, delivery.CAMPAIGN_AWAITING_PAYMENT, delivery.CAMPAIGN_ENDED}
)


@dataclass(frozen=True, slots=True)
class CampaignBudget:
    """A campaign's budget and the spend counted against it, on the day it was read."""

    ad_account_id: str
    campaign_id: str
    funding_mode: str
    budget_kind: str
    budget_micros: int
    booked_micros: int
    #: All its spend so far (net of S6 adjustments), booking part included.
    spent_micros: int = 0
    #: Its spend posted today (UTC, the clock's).
    day_spent_micros: int = 0
    #: Prepaid: the part of its spend delivered against the booking.
    from_booking_micros: int = 0

    @property
    def prepaid(self) -> bool:
        return self.funding_mode == "prepaid"


def campaign_budget_reached(
    *, prepaid: bool, daily: bool, budget_micros: int, booked_micros: int, spent_micros: int, day_spent_micros: int
) -> bool:
    """S3: a prepaid campaign stops at its booking; a drawdown one at its budget (of the day if daily).

    A prepaid campaign that delivered nothing has reached nothing, even while nothing is booked
    yet (a draft, or one awaiting payment): its first spend with nothing booked reaches it.
    """
    if prepaid:
        return spent_micros > 0 and spent_micros >= booked_micros
    return (day_spent_micros if daily else spent_micros) >= budget_micros


def budget_reached(campaign: CampaignBudget) -> bool:
    return campaign_budget_reached(
        prepaid=campaign.prepaid, daily=campaign.budget_kind == "daily", budget_micros=campaign.budget_micros,
        booked_micros=campaign.booked_micros, spent_micros=campaign.spent_micros, day_spent_micros=campaign.day_spent_micros,
    )


@dataclass(frozen=True, slots=True)
class AccountCap:
    """An ad account's budget cap (W10) and the spend of its period that contains the day it was read."""

    ad_account_id: str
    kind: str
    amount_micros: int | None
    starts_on: date | None = None
    ends_on: date | None = None
    period_spent_micros: int = 0

    def applies_on(self, day: date) -> bool:
        if self.kind == "unlimited" or self.amount_micros is None:
            return False
        if self.kind == "custom":
            return self.starts_on is not None and self.ends_on is not None and self.starts_on <= day <= self.ends_on
        return True

    def limit_micros(self, day: date) -> int | None:
        """The cap that applies on `day`, or None."""
        return self.amount_micros if self.applies_on(day) else None


def cap_reached(cap: AccountCap, day: date) -> bool:
    limit_micros = cap.limit_micros(day)
    return limit_micros is not None and cap.period_spent_micros >= limit_micros


def cap_period_starts_on(kind: str, starts_on: date | None, day: date) -> date:
    """The first day of the cap's period that contains `day` (the adapter sums spend from it)."""
    if kind == "daily":
        return day
    if kind == "monthly":
        return day.replace(day=1)
    return starts_on or day


def status_cause(status: str, pause_cause: str | None) -> str | None:
    """The cause a campaign's status puts on it, or None when the status lets it serve."""
    if status == "paused":
        return delivery.MANUAL if pause_cause in (None, "user") else None
    if status == "draft":
        return delivery.CAMPAIGN_DRAFT
    if status == "awaiting_payment":
        return delivery.CAMPAIGN_AWAITING_PAYMENT
    if status == "ended":
        return delivery.CAMPAIGN_ENDED
    return None


def _status_resume_reason(cause: str) -> str:
    return delivery.MANUAL if cause == delivery.MANUAL else delivery.CAMPAIGN_ACTIVATED


def campaign_changes(
    campaign: CampaignBudget,
    *,
    status: str,
    pause_cause: str | None,
    causes: Sequence[str],
    business_center_id: str | None,
    budget_resume_reason: str = delivery.BUDGET_RAISED,
) -> list[CauseChange]:
    """What a campaign's current snapshot and spend start and end, given the causes in force.

    Starts come before ends, so a campaign that changes one cause for another is never published
    as serving in between.
    """
    account_id, campaign_id = campaign.ad_account_id, campaign.campaign_id
    starts: list[CauseChange] = []
    ends: list[CauseChange] = []
    wanted = status_cause(status, pause_cause)
    if wanted is not None and wanted not in causes:
        starts.append(delivery.start(account_id, campaign_id, wanted, business_center_id=business_center_id))
    for cause in causes:
        if cause in STATUS_CAUSES and cause != wanted:
            ends.append(delivery.end(account_id, campaign_id, cause, _status_resume_reason(cause), business_center_id=business_center_id))
    reached = budget_reached(campaign)
    if status == "ended":
        # An ended campaign serves nothing (campaign_ended), and its settled booking (booked 0)
        # is no budget reached: no budget cause starts or ends for it.
        pass
    elif reached and delivery.CAMPAIGN_BUDGET_REACHED not in causes:
        starts.append(delivery.start(account_id, campaign_id, delivery.CAMPAIGN_BUDGET_REACHED, business_center_id=business_center_id))
    elif not reached and delivery.CAMPAIGN_BUDGET_REACHED in causes:
        ends.append(
            delivery.end(account_id, campaign_id, delivery.CAMPAIGN_BUDGET_REACHED, budget_resume_reason, business_center_id=business_center_id)
        )
    return starts + ends


def cap_changes(
    cap: AccountCap,
    day: date,
    *,
    causes: Sequence[str],
    business_center_id: str | None,
    resume_reason: str = delivery.ACCOUNT_BUDGET_RAISED,
) -> list[CauseChange]:
    """Pause an ad account whose cap is reached (S3, W10); resume one whose cap no longer is."""
    reached = cap_reached(cap, day)
    paused = delivery.ACCOUNT_BUDGET_REACHED in causes
    if reached and not paused:
        return [delivery.start(cap.ad_account_id, None, delivery.ACCOUNT_BUDGET_REACHED, business_center_id=business_center_id)]
    if paused and not reached:
        return [delivery.end(cap.ad_account_id, None, delivery.ACCOUNT_BUDGET_REACHED, resume_reason, business_center_id=business_center_id)]
    return []
