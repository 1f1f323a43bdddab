"""What one batch of spend events does to the balances and to delivery (rules W7, W8, S1-S3, S6).

Pure: the balances, charges and pause states go in, the decisions come out; the adapters read
and write them. Everything is in integer micros (rule M1).

How a batch is taken:
- Events are grouped in lanes that share one running balance: a manual ad account is a lane of
  its own; under ABA every ad account of one Business Center is in the Business Center's lane,
  because they share its buckets, so their events are taken one after the other in batch order
  (offset order within a partition) against one running Business Center balance.
- Inside a lane, consecutive spends of one ad account are planned together with
  `plan_spend_batch` (W7 order, overspend S2), which names the spend at which the funds reached
  zero: that event is the pause's cause (W8), even in the middle of a batch.
- A spend whose funds are exhausted is overspend (S2): it is debited from the `overspend`
  account of the owner that pays last (the Business Center under ABA, the ad account otherwise)
  and added to the figure of the ad account's pause.
- A final cost (S6, same `charge_id`) takes only the difference to what the charge took
  before. A lower final cost gives the difference back, reversing the charge's own takes from
  the last bucket in W7 order to the first: its overspend first (which lowers the owner's
  overspend debt, or goes to the payer's cash when that debt was paid meanwhile), then the
  credit line, the Business Center's cash and vouchers, the ad account's cash and vouchers. So a
  refund never turns vouchers into cash.

Budgets (S3, C1): a spend of a known campaign counts against its budget and its ad account's
cap (see `budgets`); the event at which one is reached is the cause of the campaign's or the
account's pause, also inside a batch. A prepaid campaign's spend up to its booking is taken from
the booking (no money moves here: the wallet holds it), and only what is beyond it goes through
the W7 order. A lower final cost (S6) gives back the W7 part of the charge first, then its
booking part (the reverse of the order it was taken in). Every accepted spend is summed per
(ad account, campaign) for `spend.posted.v1`.

Pauses (W8): an ad account pauses when the funds it can draw on reach zero; under ABA that is
its own buckets plus the Business Center total, and when the Business Center reaches zero every
ABA ad account of it whose own buckets are empty pauses with the same cause. An account that is
already paused is not paused again (no duplicate pause for one cause). Resuming is decided
elsewhere (`funds_restored`), from the balances after money came in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal

from adledger_ledger.spend_order import BucketBalances, SpendPlan, plan_spend_batch

from adledger_spend_consumer.domain import delivery
from adledger_spend_consumer.domain.budgets import AccountCap, CampaignBudget, campaign_budget_reached

OwnerKind = Literal["business_center", "ad_account"]
Owner = tuple[OwnerKind, str]
#: A bucket of an owner's balance in the ledger: cash, vouchers, credit_line or overspend.
BucketKey = tuple[OwnerKind, str, str]


@dataclass(frozen=True, slots=True)
class AccountProfile:
    """What the spend consumer knows of an ad account from the wallet's events."""

    ad_account_id: str
    business_center_id: str
    currency: str
    #: True under ABA: the account draws on its Business Center after its own buckets (W7).
    draws_on_business_center: bool


@dataclass(frozen=True, slots=True)
class Spend:
    """One spend event that passed the checks (known account, right currency)."""

    event_id: str
    ad_account_id: str
    campaign_id: str
    amount_micros: int
    charge_id: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OwnerFunds:
    """An owner's balances as the spend order sees them."""

    vouchers_micros: int = 0
    #: Cash less its holds, plus the (zero or negative) overspend: what the cash can still give.
    cash_micros: int = 0
    #: The unused part of the credit line (0 for an ad account).
    credit_line_micros: int = 0
    #: What the owner's `overspend` account owes (zero or positive).
    overspend_debt_micros: int = 0

    @property
    def spendable_micros(self) -> int:
        """The positive parts of the buckets: what spend can still take before it is overspend."""
        return max(self.vouchers_micros, 0) + max(self.cash_micros, 0) + max(self.credit_line_micros, 0)


@dataclass(frozen=True, slots=True)
class ChargeTakes:
    """What a charge (S6) has taken so far, in total and per bucket in W7 order."""

    ad_account_id: str
    amount_micros: int = 0
    account_vouchers_micros: int = 0
    account_cash_micros: int = 0
    center_vouchers_micros: int = 0
    center_cash_micros: int = 0
    center_credit_line_micros: int = 0
    overspend_micros: int = 0
    #: Prepaid (C1): the part delivered against the campaign's booking, which moved no money here.
    booking_micros: int = 0

    @property
    def ledger_taken_micros(self) -> int:
        """What the charge took in W7 order (overspend included): its amount less the booking part."""
        return (
            self.account_vouchers_micros + self.account_cash_micros + self.center_vouchers_micros
            + self.center_cash_micros + self.center_credit_line_micros + self.overspend_micros
        )

    def plus(self, plan: SpendPlan) -> ChargeTakes:
        return replace(
            self,
            account_vouchers_micros=self.account_vouchers_micros + plan.account_vouchers_micros,
            account_cash_micros=self.account_cash_micros + plan.account_cash_micros,
            center_vouchers_micros=self.center_vouchers_micros + plan.business_center_vouchers_micros,
            center_cash_micros=self.center_cash_micros + plan.business_center_cash_micros,
            center_credit_line_micros=self.center_credit_line_micros + plan.business_center_credit_line_micros,
            overspend_micros=self.overspend_micros + plan.overspend_micros,
        )


@dataclass(frozen=True, slots=True)
class PauseDecision:
    """Pause an ad account for insufficient funds, naming the spend that tipped it (W8)."""

    ad_account_id: str
    business_center_id: str | None
    cause_event_id: str
    #: The overspend this batch recorded from the cause event on (S2); more may follow while paused.
    overspend_micros: int


@dataclass(frozen=True, slots=True)
class BudgetPause:
    """Pause a campaign that reached its budget, or an ad account that reached its cap (S3)."""

    ad_account_id: str
    #: None: the whole ad account (its cap).
    campaign_id: str | None
    reason: str
    cause_event_id: str


@dataclass(slots=True)
class PostedSpend:
    """The spend of one campaign of one ad account in this batch, for `spend.posted.v1`.

    Mutable while the batch is decided (it is the running sum), read-only afterwards.
    """

    ad_account_id: str
    campaign_id: str
    funding_mode: str
    #: The id of its first spend event: what makes the posted event's id stable across a replay.
    first_event_id: str
    #: Net of S6 adjustments; negative when they gave back more than new spend took.
    amount_micros: int
    #: Prepaid: the part delivered against the booking (the rest was taken in W7 order).
    from_booking_micros: int
    spend_event_count: int
    first_occurred_at: datetime | None
    last_occurred_at: datetime | None


@dataclass(frozen=True, slots=True)
class RejectedSpend:
    """A spend that cannot be applied; it goes to the dead-letter topic and changes nothing."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class BatchDecision:
    #: Net micros taken from each owner bucket to the platform's revenue; negative: given back.
    movements: dict[BucketKey, int]
    #: The new state of every charge the batch changed (S6).
    charges: dict[str, ChargeTakes]
    #: New pauses, in the order decided.
    pauses: list[PauseDecision]
    #: Overspend accrued by ad accounts that were already paused before this batch (S2).
    overspend_of_open_pauses_micros: dict[str, int]
    rejected: list[RejectedSpend]
    #: Owners whose balance the batch changes: their new balances are published once each.
    touched_owners: list[Owner]
    #: Overspend recorded by this batch, per currency (for the metric).
    overspend_micros_by_currency: dict[str, int]
    #: Campaigns that reached their budget and accounts that reached their cap, in event order (S3).
    budget_pauses: list[BudgetPause] = field(default_factory=list)
    #: The new counters of every known campaign the batch spent on.
    campaigns: dict[tuple[str, str], CampaignBudget] = field(default_factory=dict)
    #: Net spend posted per ad account by this batch (for the caps' periods).
    account_spend_micros: dict[str, int] = field(default_factory=dict)
    #: One sum per (ad account, campaign), in order of first appearance.
    posted: list[PostedSpend] = field(default_factory=list)


@dataclass(slots=True)
class _Funds:
    """A mutable running copy of `OwnerFunds` while a batch is decided."""

    vouchers_micros: int
    cash_micros: int
    credit_line_micros: int
    overspend_debt_micros: int

    @classmethod
    def of(cls, funds: OwnerFunds | None) -> _Funds:
        funds = funds or OwnerFunds()
        return cls(funds.vouchers_micros, funds.cash_micros, funds.credit_line_micros, funds.overspend_debt_micros)

    @property
    def spendable_micros(self) -> int:
        return max(self.vouchers_micros, 0) + max(self.cash_micros, 0) + max(self.credit_line_micros, 0)


@dataclass(slots=True)
class _Campaign:
    """A mutable running copy of `CampaignBudget` while a batch is decided."""

    source: CampaignBudget
    prepaid: bool
    daily: bool
    spent_micros: int
    day_spent_micros: int
    from_booking_micros: int

    @classmethod
    def of(cls, campaign: CampaignBudget) -> _Campaign:
        return cls(
            campaign, campaign.prepaid, campaign.budget_kind == "daily", campaign.spent_micros,
            campaign.day_spent_micros, campaign.from_booking_micros,
        )

    def reached(self) -> bool:
        source = self.source
        return campaign_budget_reached(
            prepaid=self.prepaid, daily=self.daily, budget_micros=source.budget_micros, booked_micros=source.booked_micros,
            spent_micros=self.spent_micros, day_spent_micros=self.day_spent_micros,
        )

    def result(self) -> CampaignBudget:
        return replace(
            self.source, spent_micros=self.spent_micros, day_spent_micros=self.day_spent_micros,
            from_booking_micros=self.from_booking_micros,
        )


@dataclass(slots=True)
class _Batch:
    """The running state of one batch's decision."""

    accounts: Mapping[str, AccountProfile]
    funds_given: Mapping[Owner, OwnerFunds]
    aba_members: Mapping[str, Sequence[str]]
    paused: set[str]
    funds: dict[Owner, _Funds] = field(default_factory=dict)
    charges: dict[str, ChargeTakes] = field(default_factory=dict)
    movements: dict[BucketKey, int] = field(default_factory=dict)
    new_pauses: dict[str, PauseDecision] = field(default_factory=dict)
    open_pause_overspend: dict[str, int] = field(default_factory=dict)
    touched: dict[Owner, None] = field(default_factory=dict)
    overspend_by_currency: dict[str, int] = field(default_factory=dict)

    def running(self, owner: Owner) -> _Funds:
        funds = self.funds.get(owner)
        if funds is None:
            funds = self.funds[owner] = _Funds.of(self.funds_given.get(owner))
        return funds

    def move(self, owner: Owner, bucket: str, micros: int) -> None:
        if micros:
            key = (owner[0], owner[1], bucket)
            self.movements[key] = self.movements.get(key, 0) + micros
            self.touched[owner] = None


def decide_batch(
    spends: Sequence[Spend],
    *,
    accounts: Mapping[str, AccountProfile],
    funds: Mapping[Owner, OwnerFunds],
    charges: Mapping[str, ChargeTakes],
    paused_account_ids: AbstractSet[str],
    aba_members: Mapping[str, Sequence[str]],
    campaigns: Mapping[tuple[str, str], CampaignBudget] | None = None,
    caps: Mapping[str, AccountCap] | None = None,
    today: date | None = None,
    budget_paused_keys: AbstractSet[str] = frozenset(),
) -> BatchDecision:
    """Decide a batch: the takes per bucket, the charges' new state, the pauses and the overspend.

    `accounts` holds every account of `spends` and every ABA member of their Business Centers;
    `funds` the balances of those owners before the batch (a missing owner has nothing);
    `charges` what earlier charges took (S6); `paused_account_ids` the ad accounts paused now for
    insufficient funds; `aba_members` the ABA ad accounts of each Business Center.
    `campaigns` the known campaigns of the spends, keyed (ad account, campaign), with their spend
    counted on `today`; `caps` the ad accounts' caps with their period's spend on `today`;
    `budget_paused_keys` the state keys already paused for their budget or cap (S3).
    """
    batch = _Batch(accounts, funds, aba_members, set(paused_account_ids))
    known_campaigns = campaigns or {}
    running_campaigns: dict[tuple[str, str], _Campaign] = {}
    # The caps that apply today, and the spend of their period so far.
    cap_limits: dict[str, int] = {}
    cap_spent: dict[str, int] = {}
    if caps:
        if today is None:
            raise ValueError("caps are decided on a day: give `today`")
        for account_id, cap in caps.items():
            limit_micros = cap.limit_micros(today)
            if limit_micros is not None:
                cap_limits[account_id] = limit_micros
                cap_spent[account_id] = cap.period_spent_micros
    budget_paused = set(budget_paused_keys)
    budget_pauses: list[BudgetPause] = []
    account_spend: dict[str, int] = {}
    posted: dict[tuple[str, str], PostedSpend] = {}
    rejected: list[RejectedSpend] = []
    lanes: dict[str, list[tuple[int, Spend]]] = {}
    for index, spend in enumerate(spends):
        profile = accounts[spend.ad_account_id]
        lane = f"bc/{profile.business_center_id}" if profile.draws_on_business_center else f"ad/{spend.ad_account_id}"
        lanes.setdefault(lane, []).append((index, spend))

    for lane_spends in lanes.values():
        segment: list[tuple[Spend, str | None]] = []
        for index, spend in lane_spends:
            account_id = spend.ad_account_id
            if segment and segment[0][0].ad_account_id != account_id:
                _take_segment(batch, segment)
                segment = []
            delta_micros = spend.amount_micros
            charge_id = spend.charge_id
            if charge_id is not None:
                earlier = batch.charges.get(charge_id) or charges.get(charge_id)
                if earlier is not None and earlier.ad_account_id != account_id:
                    rejected.append(RejectedSpend(index, f"charge_id {charge_id} belongs to ad account {earlier.ad_account_id}"))
                    continue
                earlier = earlier or ChargeTakes(ad_account_id=account_id)
                delta_micros = spend.amount_micros - earlier.amount_micros
                batch.charges[charge_id] = replace(earlier, amount_micros=spend.amount_micros)
            pair = (account_id, spend.campaign_id)
            campaign = None
            if known_campaigns:
                campaign = running_campaigns.get(pair)
                if campaign is None and pair in known_campaigns:
                    campaign = running_campaigns[pair] = _Campaign.of(known_campaigns[pair])
            booked_micros = 0
            if delta_micros > 0:
                if campaign is not None and campaign.prepaid:
                    # C1: what the booking still holds is delivered against it; no money moves here.
                    left_micros = campaign.source.booked_micros - campaign.from_booking_micros
                    if left_micros > 0:
                        booked_micros = min(left_micros, delta_micros)
                        campaign.from_booking_micros += booked_micros
                        if charge_id is not None:
                            charge = batch.charges[charge_id]
                            batch.charges[charge_id] = replace(charge, booking_micros=charge.booking_micros + booked_micros)
                if delta_micros > booked_micros:
                    segment.append((replace(spend, amount_micros=delta_micros - booked_micros), charge_id))
            elif delta_micros < 0:
                # The segment's takes must be in the charge before its refund reverses them.
                if segment:
                    _take_segment(batch, segment)
                    segment = []
                assert charge_id is not None
                booked_micros = -_give_back(batch, account_id, charge_id, -delta_micros)
                if campaign is not None:
                    campaign.from_booking_micros += booked_micros
            if delta_micros:
                account_spend[account_id] = account_spend.get(account_id, 0) + delta_micros
                if campaign is not None:
                    campaign.spent_micros += delta_micros
                    campaign.day_spent_micros += delta_micros
                limit_micros = cap_limits.get(account_id) if cap_limits else None
                if limit_micros is not None:
                    cap_spent[account_id] += delta_micros
                    # S3: the event at which the account's spend reaches its cap pauses it.
                    if delta_micros > 0 and cap_spent[account_id] >= limit_micros and account_id not in budget_paused:
                        budget_paused.add(account_id)
                        budget_pauses.append(BudgetPause(account_id, None, delivery.ACCOUNT_BUDGET_REACHED, spend.event_id))
                # S3: the event at which the campaign's spend reaches its budget pauses it.
                if delta_micros > 0 and campaign is not None and campaign.reached():
                    key = delivery.state_key(account_id, spend.campaign_id)
                    if key not in budget_paused:
                        budget_paused.add(key)
                        budget_pauses.append(BudgetPause(account_id, spend.campaign_id, delivery.CAMPAIGN_BUDGET_REACHED, spend.event_id))
            total = posted.get(pair)
            occurred_at = spend.occurred_at
            if total is None:
                mode = campaign.source.funding_mode if campaign is not None else "drawdown"
                posted[pair] = PostedSpend(
                    account_id, spend.campaign_id, mode, spend.event_id, delta_micros, booked_micros, 1, occurred_at, occurred_at
                )
            else:
                total.amount_micros += delta_micros
                total.from_booking_micros += booked_micros
                total.spend_event_count += 1
                if occurred_at is not None:
                    if total.first_occurred_at is None or occurred_at < total.first_occurred_at:
                        total.first_occurred_at = occurred_at
                    if total.last_occurred_at is None or occurred_at > total.last_occurred_at:
                        total.last_occurred_at = occurred_at
        if segment:
            _take_segment(batch, segment)

    return BatchDecision(
        movements={key: micros for key, micros in batch.movements.items() if micros},
        charges=batch.charges,
        pauses=list(batch.new_pauses.values()),
        overspend_of_open_pauses_micros=batch.open_pause_overspend,
        rejected=rejected,
        touched_owners=list(batch.touched),
        overspend_micros_by_currency=batch.overspend_by_currency,
        budget_pauses=budget_pauses,
        campaigns={pair: campaign.result() for pair, campaign in running_campaigns.items()},
        account_spend_micros=account_spend,
        posted=list(posted.values()),
    )


def _give_back(batch: _Batch, account_id: str, charge_id: str, refund_micros: int) -> int:
    """A lower final cost (S6): give back the charge's W7 takes first, then its booking part (the
    reverse of the order they were taken in); returns the booking part given back."""
    charge = batch.charges[charge_id]
    ledger_back_micros = min(refund_micros, charge.ledger_taken_micros)
    if ledger_back_micros:
        _refund(batch, account_id, charge_id, ledger_back_micros)
    booking_back_micros = refund_micros - ledger_back_micros
    if booking_back_micros:
        charge = batch.charges[charge_id]
        assert booking_back_micros <= charge.booking_micros, "a refund cannot exceed what the charge took"
        batch.charges[charge_id] = replace(charge, booking_micros=charge.booking_micros - booking_back_micros)
    return booking_back_micros


def _owners(profile: AccountProfile) -> tuple[Owner, Owner | None]:
    account: Owner = ("ad_account", profile.ad_account_id)
    center: Owner | None = ("business_center", profile.business_center_id) if profile.draws_on_business_center else None
    return account, center


def _take_segment(batch: _Batch, segment: list[tuple[Spend, str | None]]) -> None:
    """Take consecutive spends of one ad account in W7 order and decide its pause (W8)."""
    account_id = segment[0][0].ad_account_id
    profile = batch.accounts[account_id]
    account_owner, center_owner = _owners(profile)
    own = batch.running(account_owner)
    center = batch.running(center_owner) if center_owner is not None else _Funds(0, 0, 0, 0)
    taken = plan_spend_batch(
        [spend.amount_micros for spend, _ in segment],
        aba=center_owner is not None,
        balances=BucketBalances(
            own.vouchers_micros, own.cash_micros, center.vouchers_micros, center.cash_micros, center.credit_line_micros
        ),
    )
    (own.vouchers_micros, own.cash_micros, center.vouchers_micros, center.cash_micros, center.credit_line_micros) = (
        taken.balances_after
    )
    payer_owner = center_owner or account_owner
    payer = center if center_owner is not None else own
    for (_, charge_id), plan in zip(segment, taken.plans, strict=True):
        if charge_id is not None:
            batch.charges[charge_id] = batch.charges[charge_id].plus(plan)
    batch.move(account_owner, "vouchers", sum(plan.account_vouchers_micros for plan in taken.plans))
    batch.move(account_owner, "cash", sum(plan.account_cash_micros for plan in taken.plans))
    if center_owner is not None:
        batch.move(center_owner, "vouchers", sum(plan.business_center_vouchers_micros for plan in taken.plans))
        batch.move(center_owner, "cash", sum(plan.business_center_cash_micros for plan in taken.plans))
        batch.move(center_owner, "credit_line", sum(plan.business_center_credit_line_micros for plan in taken.plans))
    if taken.overspend_micros:
        batch.move(payer_owner, "overspend", taken.overspend_micros)
        payer.overspend_debt_micros += taken.overspend_micros
        batch.overspend_by_currency[profile.currency] = (
            batch.overspend_by_currency.get(profile.currency, 0) + taken.overspend_micros
        )

    exhausted_at = taken.funds_exhausted_at_index
    if exhausted_at is not None and account_id not in batch.paused:
        cause_event_id = segment[exhausted_at][0].event_id
        overspend_micros = sum(plan.overspend_micros for plan in taken.plans[exhausted_at:])
        _pause(batch, profile, cause_event_id, overspend_micros)
        if center_owner is not None:
            # The Business Center is at zero: every ABA account of it with empty own buckets pauses too.
            for member_id in batch.aba_members.get(profile.business_center_id, ()):
                if member_id not in batch.paused and batch.running(("ad_account", member_id)).spendable_micros <= 0:
                    _pause(batch, batch.accounts[member_id], cause_event_id, 0)
    elif taken.overspend_micros:
        _accrue_overspend(batch, account_id, taken.overspend_micros)


def _pause(batch: _Batch, profile: AccountProfile, cause_event_id: str, overspend_micros: int) -> None:
    batch.paused.add(profile.ad_account_id)
    batch.new_pauses[profile.ad_account_id] = PauseDecision(
        ad_account_id=profile.ad_account_id,
        business_center_id=profile.business_center_id if profile.draws_on_business_center else None,
        cause_event_id=cause_event_id,
        overspend_micros=overspend_micros,
    )


def _accrue_overspend(batch: _Batch, account_id: str, overspend_micros: int) -> None:
    """Overspend of a paused account adds to its pause: the one this batch opened, or an earlier one."""
    new_pause = batch.new_pauses.get(account_id)
    if new_pause is not None:
        batch.new_pauses[account_id] = replace(new_pause, overspend_micros=new_pause.overspend_micros + overspend_micros)
    else:
        batch.open_pause_overspend[account_id] = batch.open_pause_overspend.get(account_id, 0) + overspend_micros


def _refund(batch: _Batch, account_id: str, charge_id: str, refund_micros: int) -> None:
    """Give back part of a charge (S6): reverse its takes from the last bucket in W7 order to the first."""
    profile = batch.accounts[account_id]
    account_owner, center_owner = _owners(profile)
    payer_owner = center_owner or account_owner
    own = batch.running(account_owner)
    payer = batch.running(payer_owner)
    center = batch.running(center_owner) if center_owner is not None else None
    charge = batch.charges[charge_id]
    remaining_micros = refund_micros

    def give_back(taken_micros: int) -> int:
        nonlocal remaining_micros
        back_micros = min(taken_micros, remaining_micros)
        remaining_micros -= back_micros
        return back_micros

    # The overspend part lowers what the payer still owes; what was owed but already paid by
    # later money in goes back to the payer's cash.
    overspend_back = give_back(charge.overspend_micros)
    debt_back = min(overspend_back, payer.overspend_debt_micros)
    batch.move(payer_owner, "overspend", -debt_back)
    batch.move(payer_owner, "cash", -(overspend_back - debt_back))
    payer.overspend_debt_micros -= debt_back
    payer.cash_micros += overspend_back
    credit_back = give_back(charge.center_credit_line_micros)
    center_cash_back = give_back(charge.center_cash_micros)
    center_vouchers_back = give_back(charge.center_vouchers_micros)
    if center_owner is not None and center is not None:
        batch.move(center_owner, "credit_line", -credit_back)
        batch.move(center_owner, "cash", -center_cash_back)
        batch.move(center_owner, "vouchers", -center_vouchers_back)
        center.credit_line_micros += credit_back
        center.cash_micros += center_cash_back
        center.vouchers_micros += center_vouchers_back
    cash_back = give_back(charge.account_cash_micros)
    vouchers_back = give_back(charge.account_vouchers_micros)
    batch.move(account_owner, "cash", -cash_back)
    batch.move(account_owner, "vouchers", -vouchers_back)
    own.cash_micros += cash_back
    own.vouchers_micros += vouchers_back
    # A charge's parts add up to its amount, and a refund is at most that amount.
    assert remaining_micros == 0, "a refund cannot exceed what the charge took"
    batch.charges[charge_id] = replace(
        charge,
        overspend_micros=charge.overspend_micros - overspend_back,
        center_credit_line_micros=charge.center_credit_line_micros - credit_back,
        center_cash_micros=charge.center_cash_micros - center_cash_back,
        center_vouchers_micros=charge.center_vouchers_micros - center_vouchers_back,
        account_cash_micros=charge.account_cash_micros - cash_back,
        account_vouchers_micros=charge.account_vouchers_micros - vouchers_back,
    )


def accounts_to_resume(
    paused_account_ids: Iterable[str],
    *,
    accounts: Mapping[str, AccountProfile],
    funds: Mapping[Owner, OwnerFunds],
) -> list[str]:
    """The paused ad accounts whose funds came back above zero (W8: resume with `funds_restored`).

    The funds an account can draw on are its own buckets, plus its Business Center's under ABA.
    """
    resumed: list[str] = []
    for account_id in paused_account_ids:
        profile = accounts.get(account_id)
        if profile is None:
            continue
        account_owner, center_owner = _owners(profile)
        spendable_micros = funds.get(account_owner, OwnerFunds()).spendable_micros
        if center_owner is not None:
            spendable_micros += funds.get(center_owner, OwnerFunds()).spendable_micros
        if spendable_micros > 0:
            resumed.append(account_id)
    return resumed
