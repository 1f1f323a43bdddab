"""Campaigns, their states and their prepaid booking (rules C1-C5, S3), as pure decisions.

A campaign is an immutable value; every use case is a function from the campaign (and what
happened) to a `Decision`: the campaign after, and the effects the core carries out in the same
transaction (wallet and invoicing commands through the outbox, deadlines). No I/O here.

States (C5): draft → awaiting_payment → active ⇄ paused (user / budget / funds) → ended.

A prepaid campaign's booking is a set of wallet holds (C1). Each hold has a state here:

| state            | meaning                                                     | counted as booked |
| ---------------- | ----------------------------------------------------------- | ----------------- |
| placing          | PlaceHold sent, no answer yet                               | no                |
| held             | the wallet holds `amount_micros`                            | yes               |
| resize_placing   | the smaller hold of a ResizeHold (applied atomically, C2)   | yes               |
| releasing        | voided, or replaced by a resize; answer not seen yet        | no                |
| released         | the wallet confirmed the void                               | no                |
| settling         | posted (partly) or voided at settlement (C3, C4)            | no                |
| settled          | the wallet confirmed the settlement                         | no                |
| rejected         | the wallet refused to place it (insufficient funds)         | no                |

Decisions the rules leave open, made here:

- Activation of a prepaid campaign asks the wallet for the whole budget (`allow_partial`); the
  campaign stays `draft` until the wallet answers, then becomes `active` (all held) or
  `awaiting_payment` (part or nothing held: an invoice is asked for the difference, C1).
- An invoice's payment is seen as the wallet's `FundsReceived` with the invoice's id; then the
  rest is held; if something took part of the money meanwhile, a new invoice is asked for what
  is still missing.
- A budget may not go below the minimum (configurable, default one unit of currency, C2) nor
  below what was already delivered from the booking. Reducing releases from the newest holds:
  whole holds are voided, the last one touched is resized (ResizeHold, one atomic wallet step).
  Raising a prepaid budget holds the difference, and invoices what is not covered.
- While a hold command of the campaign is unanswered (placing, resizing, releasing), another
  budget change is refused as `campaign_state` (try again); the wallet answers in milliseconds.
- Settlement (C3 at end + 48 h, C4 at the end of the month of the end for a campaign paused at
  its end): the delivered part of the holds is posted to the platform, oldest hold first, and
  the rest is voided when it is more than one unit of currency; otherwise the whole booking is
  posted. A campaign that ends while awaiting payment is settled like C3; its open invoice no
  longer books anything (a payment of it stays in the balance).
- Delivery decisions: a campaign-level pause `campaign_budget_reached` pauses with cause
  budget, `insufficient_funds` with cause funds; an account-level pause pauses every active
  campaign of the account with the matching cause; a resume resumes only campaigns paused by
  budget or funds, never one a user paused. A prepaid campaign whose delivered spend reaches
  its booking pauses by budget (S3) even before the spend consumer's decision arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from adledger_libs.clock import utc_month_ends_at

#: C3: an underdelivery is credited back only when booked − delivered is more than one unit.
ONE_UNIT_MICROS = 1_000_000
#: C3: the underdelivery is credited this long after the end.
UNDERDELIVERY_CREDIT_DELAY = timedelta(hours=48)


class Status(StrEnum):
    DRAFT = "draft"
    AWAITING_PAYMENT = "awaiting_payment"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class PauseCause(StrEnum):
    USER = "user"
    BUDGET = "budget"
    FUNDS = "funds"


class HoldState(StrEnum):
    PLACING = "placing"
    HELD = "held"
    RESIZE_PLACING = "resize_placing"
    RELEASING = "releasing"
    RELEASED = "released"
    SETTLING = "settling"
    SETTLED = "settled"
    REJECTED = "rejected"


COUNTED = frozenset({HoldState.HELD, HoldState.RESIZE_PLACING})
IN_FLIGHT = frozenset({HoldState.PLACING, HoldState.RESIZE_PLACING, HoldState.RELEASING})


class CampaignError(Exception):
    """The base of the campaign rules' rejections."""


class InvalidCampaignError(CampaignError, ValueError):
    """A campaign or budget that is not well formed."""


class CampaignStateError(CampaignError):
    """The campaign is not in a state that allows this (C5)."""


class BookingWithoutPayerError(Exception):
    """A prepaid booking with no payer: whose cash pays is set at activation (C1, W7), so no use
    case makes this state; only a stored campaign that was changed by hand could be in it. It is
    not the caller's fault, so not a `CampaignError`: it stops the use case loudly instead of
    asking the wallet to hold, or invoicing to bill, an owner that is not there."""

    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"prepaid campaign {campaign_id} books money but has no payer (set at its activation)")
        self.campaign_id = campaign_id


class BudgetBelowMinimumError(CampaignError):
    """A budget below the minimum (C2) or below what was already delivered."""

    def __init__(self, budget_micros: int, minimum_micros: int, reason: str) -> None:
        super().__init__(
            f"a budget of {budget_micros} micros is below the minimum of {minimum_micros} micros: {reason}"
        )
        self.budget_micros = budget_micros
        self.minimum_micros = minimum_micros


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    seq: int
    amount_micros: int
    state: HoldState
    #: At settlement: what was asked to be posted (None: all of it; 0: a void).
    posted_micros: int | None = None


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    ad_account_id: str
    business_center_id: str
    name: str
    funding_mode: Literal["drawdown", "prepaid"]
    budget_kind: Literal["lifetime", "daily"]
    budget_micros: int
    currency: str
    status: Status
    pause_cause: PauseCause | None
    starts_at: datetime | None
    ends_at: datetime | None
    version: int
    created_at: datetime
    #: The owner whose cash is held for a prepaid campaign (the BC's under ABA, W7); set at activation.
    payer_owner_id: str | None = None
    activation_requested: bool = False
    delivered_micros: int = 0
    spent_micros: int = 0
    open_invoice_id: str | None = None
    invoice_count: int = 0
    settled: bool = False
    holds: tuple[Hold, ...] = field(default=())

    @property
    def prepaid(self) -> bool:
        return self.funding_mode == "prepaid"

    @property
    def booked_micros(self) -> int:
        return sum(hold.amount_micros for hold in self.holds if hold.state in COUNTED)

    @property
    def booking_in_flight(self) -> bool:
        return any(hold.state in IN_FLIGHT for hold in self.holds)

    def hold(self, hold_id: str) -> Hold | None:
        return next((hold for hold in self.holds if hold.hold_id == hold_id), None)


# Effects the core carries out in the decision's transaction.


@dataclass(frozen=True)
class PlaceHoldEffect:
    hold_id: str
    owner_id: str
    amount_micros: int


@dataclass(frozen=True)
class ResizeHoldEffect:
    hold_id: str
    new_hold_id: str
    amount_micros: int


@dataclass(frozen=True)
class ResolveHoldEffect:
    hold_id: str
    action: Literal["post", "void"]
    amount_micros: int | None


@dataclass(frozen=True)
class IssueInvoiceEffect:
    invoice_id: str
    owner_id: str
    amount_micros: int


@dataclass(frozen=True)
class ScheduleDeadline:
    kind: Literal["end", "settle"]
    due_at: datetime


Effect = PlaceHoldEffect | ResizeHoldEffect | ResolveHoldEffect | IssueInvoiceEffect | ScheduleDeadline


@dataclass(frozen=True)
class Decision:
    before: Campaign
    after: Campaign
    effects: tuple[Effect, ...] = ()

    @property
    def changed(self) -> bool:
        return self.after != self.before


def hold_id_of(campaign_id: str, seq: int) -> str:
    """Deterministic hold ids: a repeat of a command or of an outbox row holds once (M5)."""
    return f"campaign:{campaign_id}:hold:{seq}"


def invoice_id_of(campaign_id: str, number: int) -> str:
    return f"campaign:{campaign_id}:invoice:{number}"


# Creating ----------------------------------------------------------------------------------------


def create(
    *, campaign_id: str, ad_account_id: str, business_center_id: str, name: str,
    funding_mode: Literal["drawdown", "prepaid"], budget_kind: Literal["lifetime", "daily"], budget_micros: int,
    currency: str, starts_at: datetime | None, ends_at: datetime | None, minimum_budget_micros: int, now: datetime,
) -> Decision:
    if type(budget_micros) is not int:
        raise InvalidCampaignError("a budget is an integer of micros (M1)")
    if budget_micros < minimum_budget_micros:
        raise BudgetBelowMinimumError(budget_micros, minimum_budget_micros, "the configured minimum budget")
    if funding_mode == "prepaid" and budget_kind != "lifetime":
        raise InvalidCampaignError("a prepaid campaign books a lifetime budget (C1)")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise InvalidCampaignError("the schedule ends before it starts")
    if ends_at is not None and ends_at <= now:
        raise InvalidCampaignError("the schedule ends in the past")
    campaign = Campaign(
        id=campaign_id, ad_account_id=ad_account_id, business_center_id=business_center_id, name=name,
        funding_mode=funding_mode, budget_kind=budget_kind, budget_micros=budget_micros, currency=currency,
        status=Status.DRAFT, pause_cause=None, starts_at=starts_at, ends_at=ends_at, version=1, created_at=now,
    )
    effects: tuple[Effect, ...] = (ScheduleDeadline("end", ends_at),) if ends_at is not None else ()
    # `before` is the same campaign: the core publishes a creation with previous_status null.
    return Decision(campaign, campaign, effects)


# Activation and booking (C1) ---------------------------------------------------------------------


def activate(campaign: Campaign, *, payer_owner_id: str) -> Decision:
    if campaign.status is not Status.DRAFT or campaign.activation_requested:
        raise CampaignStateError(f"campaign {campaign.id} is {campaign.status}; only a draft is activated")
    if not campaign.prepaid:
        return _to(campaign, replace(campaign, status=Status.ACTIVE, activation_requested=True))
    seq = len(campaign.holds) + 1
    hold = Hold(hold_id_of(campaign.id, seq), seq, campaign.budget_micros, HoldState.PLACING)
    after = replace(campaign, activation_requested=True, payer_owner_id=payer_owner_id, holds=(*campaign.holds, hold))
    return _to(campaign, after, PlaceHoldEffect(hold.hold_id, payer_owner_id, campaign.budget_micros))


def hold_placed(campaign: Campaign, hold_id: str, held_micros: int) -> Decision:
    hold = campaign.hold(hold_id)
    if hold is None or hold.state not in (HoldState.PLACING, HoldState.RESIZE_PLACING):
        return Decision(campaign, campaign)  # a repeat, or not ours to act on
    after = _with_hold(campaign, replace(hold, amount_micros=held_micros, state=HoldState.HELD))
    return _reconcile(campaign, after)


def hold_refused(campaign: Campaign, hold_id: str, error: str) -> Decision:
    """Only a refusal for want of money acts (C1: invoice the difference). Other refusals on the
    shared topic are another environment's wallet answering our command; they change nothing."""
    hold = campaign.hold(hold_id)
    if hold is None or hold.state is not HoldState.PLACING or error != "insufficient_funds":
        return Decision(campaign, campaign)
    after = _with_hold(campaign, replace(hold, state=HoldState.REJECTED))
    return _reconcile(campaign, after)


def hold_resolved(campaign: Campaign, hold_id: str) -> Decision:
    hold = campaign.hold(hold_id)
    if hold is None:
        return Decision(campaign, campaign)
    if hold.state is HoldState.RELEASING:
        return Decision(campaign, _with_hold(campaign, replace(hold, state=HoldState.RELEASED)))
    if hold.state is HoldState.SETTLING:
        return Decision(campaign, _with_hold(campaign, replace(hold, state=HoldState.SETTLED)))
    return Decision(campaign, campaign)


def funds_received(campaign: Campaign, invoice_id: str) -> Decision:
    """C1: the shortfall invoice was paid and the wallet credited it: hold the rest."""
    if campaign.open_invoice_id != invoice_id or campaign.status is Status.ENDED:
        return Decision(campaign, campaign)
    decision = hold_rest(replace(campaign, open_invoice_id=None))
    return _to(campaign, decision.after, *decision.effects)


def payer_of(campaign: Campaign) -> str:
    """Whose cash books the campaign (C1): the payer its activation chose (the BC's under ABA, W7)."""
    if campaign.payer_owner_id is None:
        raise BookingWithoutPayerError(campaign.id)
    return campaign.payer_owner_id


def _reconcile(before: Campaign, campaign: Campaign) -> Decision:
    """After any change of the booking: activate when all is held, ask for what is missing."""
    effects: list[Effect] = []
    if campaign.status is Status.ENDED or campaign.settled:
        # A hold that arrives after the end is given back at once; money is never left held.
        for hold in campaign.holds:
            if hold.state is HoldState.HELD and campaign.settled:
                campaign = _with_hold(campaign, replace(hold, state=HoldState.RELEASING))
                effects.append(ResolveHoldEffect(hold.hold_id, "void", None))
        return _to(before, campaign, *effects)
    if campaign.booking_in_flight or not campaign.prepaid or not campaign.activation_requested:
        return _to(before, campaign)
    # Read once, before `campaign` is rebound below: the invoice names this owner (mypy found that
    # the assert this replaces no longer covered the rebound name, and `python -O` drops asserts).
    payer = payer_of(campaign)
    shortfall = campaign.budget_micros - campaign.booked_micros
    if shortfall <= 0:
        if campaign.status in (Status.DRAFT, Status.AWAITING_PAYMENT):
            campaign = replace(campaign, status=Status.ACTIVE, pause_cause=None)
        return _to(before, campaign)
    if campaign.open_invoice_id is None:
        number = campaign.invoice_count + 1
        invoice_id = invoice_id_of(campaign.id, number)
        campaign = replace(campaign, open_invoice_id=invoice_id, invoice_count=number)
        effects.append(IssueInvoiceEffect(invoice_id, payer, shortfall))
    return _to(before, _await_payment(campaign), *effects)


def _await_payment(campaign: Campaign) -> Campaign:
    if campaign.status is Status.DRAFT:
        return replace(campaign, status=Status.AWAITING_PAYMENT)
    return campaign


def hold_rest(campaign: Campaign) -> Decision:
    """Hold what is still missing of the budget (after a payment, or a raised budget)."""
    payer = payer_of(campaign)
    shortfall = campaign.budget_micros - campaign.booked_micros
    if shortfall <= 0 or campaign.booking_in_flight:
        return _reconcile(campaign, campaign)
    seq = len(campaign.holds) + 1
    hold = Hold(hold_id_of(campaign.id, seq), seq, shortfall, HoldState.PLACING)
    after = replace(campaign, holds=(*campaign.holds, hold))
    return _to(campaign, after, PlaceHoldEffect(hold.hold_id, payer, shortfall))


# Budget changes (C2) ------------------------------------------------------------------------------


def change_budget(campaign: Campaign, budget_micros: int, *, minimum_budget_micros: int) -> Decision:
    if type(budget_micros) is not int:
        raise InvalidCampaignError("a budget is an integer of micros (M1)")
    if campaign.status is Status.ENDED:
        raise CampaignStateError(f"campaign {campaign.id} has ended; its budget is final")
    if budget_micros < minimum_budget_micros:
        raise BudgetBelowMinimumError(budget_micros, minimum_budget_micros, "the configured minimum budget (C2)")
    if budget_micros < campaign.delivered_micros:
        raise BudgetBelowMinimumError(budget_micros, campaign.delivered_micros, "what was already delivered")
    if budget_micros == campaign.budget_micros:
        return Decision(campaign, campaign)
    if not campaign.prepaid or not campaign.activation_requested:
        return _to(campaign, replace(campaign, budget_micros=budget_micros))
    if campaign.booking_in_flight:
        raise CampaignStateError(f"campaign {campaign.id} has a wallet answer pending; try again in a moment")
    after = replace(campaign, budget_micros=budget_micros)
    release = campaign.booked_micros - budget_micros
    if release == 0:
        if after.status is Status.AWAITING_PAYMENT:
            # Fully booked now (C1): active at once; a payment of the open invoice only adds to the balance.
            after = replace(after, status=Status.ACTIVE, open_invoice_id=None)
        return _to(campaign, after)
    if release < 0:
        if campaign.open_invoice_id is not None:
            return _to(campaign, after)  # the open invoice's payment holds the rest
        decision = hold_rest(after)
        return _to(campaign, decision.after, *decision.effects)
    effects: list[Effect] = []
    holds = list(after.holds)
    for index in sorted(range(len(holds)), key=lambda i: holds[i].seq, reverse=True):
        hold = holds[index]
        if release <= 0:
            break
        if hold.state is not HoldState.HELD:
            continue
        if release >= hold.amount_micros:
            holds[index] = replace(hold, state=HoldState.RELEASING)
            effects.append(ResolveHoldEffect(hold.hold_id, "void", None))
            release -= hold.amount_micros
        else:
            seq = len(holds) + 1
            smaller = Hold(hold_id_of(campaign.id, seq), seq, hold.amount_micros - release, HoldState.RESIZE_PLACING)
            holds[index] = replace(hold, state=HoldState.RELEASING)
            holds.append(smaller)
            effects.append(ResizeHoldEffect(hold.hold_id, smaller.hold_id, smaller.amount_micros))
            release = 0
    after = replace(after, holds=tuple(holds))
    if after.status is Status.AWAITING_PAYMENT:
        # Fully booked now (C1): active at once; a payment of the open invoice only adds to the balance.
        after = replace(after, status=Status.ACTIVE, open_invoice_id=None)
    return _to(campaign, after, *effects)


# Pauses and resumes (C5, S3) -----------------------------------------------------------------------


def pause_by_user(campaign: Campaign) -> Decision:
    if campaign.status is not Status.ACTIVE:
        raise CampaignStateError(f"campaign {campaign.id} is {campaign.status}; only an active campaign is paused")
    return _to(campaign, replace(campaign, status=Status.PAUSED, pause_cause=PauseCause.USER))


def resume_by_user(campaign: Campaign) -> Decision:
    if campaign.status is not Status.PAUSED or campaign.pause_cause is not PauseCause.USER:
        raise CampaignStateError(
            f"campaign {campaign.id} is {campaign.status}"
            + (f" ({campaign.pause_cause})" if campaign.pause_cause else "")
            + "; only a campaign a user paused is resumed by a user"
        )
    return _to(campaign, replace(campaign, status=Status.ACTIVE, pause_cause=None))


def pause_cause_of(reason: str) -> PauseCause:
    if reason in ("campaign_budget_reached", "account_budget_reached"):
        return PauseCause.BUDGET
    if reason == "manual":
        return PauseCause.USER
    return PauseCause.FUNDS


def delivery_paused(campaign: Campaign, reason: str) -> Decision:
    if campaign.status is not Status.ACTIVE:
        return Decision(campaign, campaign)
    return _to(campaign, replace(campaign, status=Status.PAUSED, pause_cause=pause_cause_of(reason)))


def delivery_resumed(campaign: Campaign) -> Decision:
    if campaign.status is not Status.PAUSED or campaign.pause_cause not in (PauseCause.BUDGET, PauseCause.FUNDS):
        return Decision(campaign, campaign)
    return _to(campaign, replace(campaign, status=Status.ACTIVE, pause_cause=None))


def spend_posted(campaign: Campaign, *, amount_micros: int, from_booking_micros: int) -> Decision:
    """Count posted spend; a prepaid campaign whose delivery reaches its booking pauses (S3)."""
    after = replace(
        campaign, spent_micros=campaign.spent_micros + amount_micros,
        delivered_micros=campaign.delivered_micros + (from_booking_micros if campaign.prepaid else amount_micros),
    )
    reached = after.booked_micros > 0 and after.delivered_micros >= after.booked_micros
    if campaign.prepaid and after.status is Status.ACTIVE and reached:
        after = replace(after, status=Status.PAUSED, pause_cause=PauseCause.BUDGET)
    return _to(campaign, after)


# The end and the settlement (C3, C4) ---------------------------------------------------------------


def end_reached(campaign: Campaign, now: datetime) -> Decision:
    """The scheduled end: the campaign ends; a prepaid booking is settled at end + 48 h (C3), or at
    the end of that month for a campaign that is paused at its end (C4)."""
    if campaign.status is Status.ENDED:
        return Decision(campaign, campaign)
    end = campaign.ends_at or now
    # An invoice still open at the end no longer books anything: if it is paid, the money stays
    # in the balance like any payment.
    after = replace(campaign, status=Status.ENDED, open_invoice_id=None)
    effects: list[Effect] = []
    if campaign.prepaid and campaign.activation_requested:
        due = utc_month_ends_at(end) if campaign.status is Status.PAUSED else end + UNDERDELIVERY_CREDIT_DELAY
        effects.append(ScheduleDeadline("settle", due))
    return _to(campaign, after, *effects)


def plan_settlement(
    holds: list[tuple[str, int]], delivered_micros: int
) -> list[tuple[str, Literal["post", "void"], int | None]]:
    """How to settle held holds `(hold_id, amount)`, oldest first, for what was delivered (C3, C4).

    When booked − delivered is more than one unit, the delivered part is posted (oldest hold
    first) and the rest is voided, i.e. credited back; otherwise every hold is posted whole.
    `None` as an amount posts the whole hold."""
    booked = sum(amount for _, amount in holds)
    if booked - delivered_micros <= ONE_UNIT_MICROS:
        return [(hold_id, "post", None) for hold_id, _ in holds]
    plan: list[tuple[str, Literal["post", "void"], int | None]] = []
    remaining = max(delivered_micros, 0)
    for hold_id, amount in holds:
        take = min(amount, remaining)
        remaining -= take
        if take == 0:
            plan.append((hold_id, "void", None))
        else:
            plan.append((hold_id, "post", None if take == amount else take))
    return plan


def settle(campaign: Campaign) -> Decision:
    if campaign.settled or campaign.status is not Status.ENDED:
        return Decision(campaign, campaign)
    held = sorted((hold for hold in campaign.holds if hold.state in COUNTED), key=lambda hold: hold.seq)
    plan = plan_settlement([(hold.hold_id, hold.amount_micros) for hold in held], campaign.delivered_micros)
    by_id = {hold.hold_id: hold for hold in held}
    after = replace(campaign, settled=True, open_invoice_id=None)
    effects: list[Effect] = []
    for hold_id, action, amount in plan:
        hold = by_id[hold_id]
        posted = 0 if action == "void" else (hold.amount_micros if amount is None else amount)
        after = _with_hold(after, replace(hold, state=HoldState.SETTLING, posted_micros=posted))
        effects.append(ResolveHoldEffect(hold_id, action, amount))
    return _to(campaign, after, *effects)


def credited_micros(campaign: Campaign) -> int:
    """What a settlement gave back to the balance (C3, C4)."""
    return sum(
        hold.amount_micros - (hold.posted_micros or 0)
        for hold in campaign.holds
        if hold.state in (HoldState.SETTLING, HoldState.SETTLED)
    )


# Helpers -------------------------------------------------------------------------------------------------


def _with_hold(campaign: Campaign, hold: Hold) -> Campaign:
    holds = tuple(hold if existing.hold_id == hold.hold_id else existing for existing in campaign.holds)
    return replace(campaign, holds=holds)


def visible(campaign: Campaign) -> tuple[object, ...]:
    """What a `CampaignChanged` snapshot shows; its version grows only when this changes."""
    return (
        campaign.status, campaign.pause_cause, campaign.budget_micros, campaign.booked_micros, campaign.name,
        campaign.starts_at, campaign.ends_at, campaign.business_center_id,
    )


def _to(before: Campaign, after: Campaign, *effects: Effect) -> Decision:
    """The decision from `before` to `after`, whose version is one more than `before`'s when
    anything a snapshot shows changed (however many steps composed it)."""
    after = replace(after, version=before.version + (1 if visible(after) != visible(before) else 0))
    return Decision(before, after, tuple(effects))
