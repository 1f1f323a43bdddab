"""The campaign use cases (rules C1-C5, W5, W9, W10, S3): campaigns created, activated, paused,
budgeted and ended; caps set; and what the other services answer.

Money moves only through the wallet: this service sends `PlaceHold` / `ResizeHold` /
`ResolveHold` on `wallet.commands.v1` and `IssueInvoice` on `invoicing.commands.v1` through the
outbox, in the same transaction as the campaign's change, and reads `wallet.events.v1` (accounts,
holds, payments), `spend.posted.v1` (what was delivered) and `delivery.control.v1` (pauses).
Every change of a campaign or a cap is published as a versioned snapshot on `campaign.events.v1`.

Who may do what is the platform's one table (`adledger_auth.roles`, W9): campaigns are managed
by Admins and Operators (`MANAGE_CAMPAIGNS`), caps changed by Admins and Finance Managers, only
Admins where the Business Center has no Finance Manager (`CHANGE_BUDGET`), and any role reads
(`READ`); a platform operator may do everything. A caller with no role in the Business Center
gets the answer of an ad account or campaign that does not exist, so nothing of another tenant
is seen, not even whether it exists. Each use case runs in one `CampaignUnitOfWork` (ports).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from adledger_auth.callers import Caller
from adledger_auth.roles import Action
from adledger_contracts.campaigns import AdAccountBudgetCapChanged, CampaignChanged
from adledger_contracts.external import DeliveryDecided
from adledger_contracts.invoicing import IssueInvoice
from adledger_contracts.spending import SpendPosted
from adledger_contracts.wallet import (
    AdAccountOpened,
    AutomaticBalanceAllocationEnabled,
    BusinessCenterOpened,
    FundsReceived,
    HoldPlaced,
    HoldRejected,
    HoldResolved,
    PlaceHold,
    ResizeHold,
    ResolveHold,
)
from adledger_libs.clock import Clock, utc_day_of
from adledger_libs.logs import get_logger

from adledger_campaign.domain import campaigns as domain
from adledger_campaign.domain.campaigns import Campaign, Decision
from adledger_campaign.domain.caps import MAXIMUM_CAP_CHANGES_PER_UTC_DAY, Cap, budget_sync_cap, plan_cap_change
from adledger_campaign.ports.store import (
    AdAccount,
    NoBudgetCapError,
    StoredCap,
    UnknownAdAccountError,
    UnknownCampaignError,
)
from adledger_campaign.ports.unit_of_work import CampaignUnitOfWork, Transactions

log = get_logger(__name__)

SERVICE = "campaign"
NO_LONGER_DUE = "no_longer_due"
#: What an API key must be scoped to (or `*`) to use this service's API; a session may do all its user may.
API_SCOPE = "campaigns"


@dataclass(frozen=True)
class Topics:
    """Where the core publishes (from the settings: the names are configuration, not the core's)."""

    campaign_events: str
    wallet_commands: str
    invoicing_commands: str


class Campaigns:
    def __init__(self, clock: Clock, topics: Topics, *, minimum_budget_micros: int = 1_000_000) -> None:
        self.clock = clock
        self.topics = topics
        self.minimum_budget_micros = minimum_budget_micros

    # Campaigns -----------------------------------------------------------------------------------

    async def create_campaign(
        self, work: CampaignUnitOfWork, caller: Caller, *, ad_account_id: str, name: str,
        funding_mode: Literal["drawdown", "prepaid"], budget_kind: Literal["lifetime", "daily"], budget_micros: int,
        starts_at: datetime | None, ends_at: datetime | None,
    ) -> Campaign:
        account = await self._ad_account(work, caller, ad_account_id)
        await self._require(work, caller, account.business_center_id, Action.MANAGE_CAMPAIGNS)
        decision = domain.create(
            campaign_id=str(uuid.uuid4()), ad_account_id=account.id, business_center_id=account.business_center_id,
            name=name, funding_mode=funding_mode, budget_kind=budget_kind, budget_micros=budget_micros,
            currency=account.currency, starts_at=starts_at, ends_at=ends_at,
            minimum_budget_micros=self.minimum_budget_micros, now=self.clock.now(),
        )
        await work.store.add_campaign(decision.after, caller.user_id)
        return await self._apply(work, decision, caller.user_id, created=True)

    async def read_campaign(
        self, work: CampaignUnitOfWork, caller: Caller, campaign_id: str
    ) -> tuple[Campaign, str | None]:
        """The campaign and the last wallet refusal that changed nothing (for an operator)."""
        campaign = await self._campaign(work, caller, campaign_id, for_update=False)
        await self._require(work, caller, campaign.business_center_id, Action.READ)
        return campaign, await work.store.hold_error(campaign_id)

    async def campaigns_of_ad_account(self, work: CampaignUnitOfWork, caller: Caller, ad_account_id: str) -> list[Campaign]:
        """The ad account's campaigns, for any role in its Business Center (W9)."""
        account = await self._ad_account(work, caller, ad_account_id)
        await self._require(work, caller, account.business_center_id, Action.READ)
        found = [await work.store.campaign(campaign_id) for campaign_id in await work.store.campaign_ids_of_ad_account(ad_account_id)]
        return [campaign for campaign in found if campaign is not None]

    async def activate(self, work: CampaignUnitOfWork, caller: Caller, campaign_id: str) -> Campaign:
        """C1: a drawdown campaign is active at once; a prepaid one books its whole budget first."""
        campaign = await self._managed(work, caller, campaign_id)
        account = await work.store.ad_account(campaign.ad_account_id)
        if account is None:
            raise UnknownAdAccountError(campaign.ad_account_id)
        # W7: an ABA account draws on its Business Center's cash, so its booking is held there.
        payer = account.business_center_id if account.draws_on_business_center else account.id
        return await self._apply(work, domain.activate(campaign, payer_owner_id=payer), caller.user_id)

    async def pause(self, work: CampaignUnitOfWork, caller: Caller, campaign_id: str) -> Campaign:
        campaign = await self._managed(work, caller, campaign_id)
        return await self._apply(work, domain.pause_by_user(campaign), caller.user_id)

    async def resume(self, work: CampaignUnitOfWork, caller: Caller, campaign_id: str) -> Campaign:
        campaign = await self._managed(work, caller, campaign_id)
        return await self._apply(work, domain.resume_by_user(campaign), caller.user_id)

    async def change_budget(
        self, work: CampaignUnitOfWork, caller: Caller, campaign_id: str, budget_micros: int
    ) -> Campaign:
        """C2: a lower budget releases the difference at once; the minimum undoes an activation."""
        campaign = await self._managed(work, caller, campaign_id)
        decision = domain.change_budget(campaign, budget_micros, minimum_budget_micros=self.minimum_budget_micros)
        return await self._apply(work, decision, caller.user_id)

    # Caps (W5, W9, W10) ---------------------------------------------------------------------------

    async def set_cap(
        self, work: CampaignUnitOfWork, caller: Caller, ad_account_id: str, cap: Cap | Callable[[], Cap]
    ) -> tuple[StoredCap, bool]:
        """A person's change of the account's cap (W9: Admin or Finance Manager; W10: ten a UTC day).
        The cap it already has is no change: answered as it is, not counted. `cap` may be how to
        make it: it is made (its values checked) only once the caller may set the account's cap, so
        someone who may not learns that, not what is wrong with the values (a 403, or for another
        tenant the answer of an unknown account, never a 422 first)."""
        store = work.store
        account = await self._ad_account(work, caller, ad_account_id)
        await self._require(work, caller, account.business_center_id, Action.CHANGE_BUDGET)
        if not isinstance(cap, Cap):
            cap = cap()
        await store.lock_ad_account(ad_account_id)
        now = self.clock.now()
        current = await store.cap(ad_account_id, for_update=True)
        change = plan_cap_change(
            ad_account_id=ad_account_id, current=current.cap if current else None, new=cap,
            changes_today_count=await store.cap_changes_on(ad_account_id, utc_day_of(now)), moment=now,
        )
        if current is not None and not change.counted:
            return current, False
        await store.record_cap_change(ad_account_id, change.utc_day, caller.user_id, now)
        return await self._save_cap(work, account, cap, current, source="user", user_id=caller.user_id), True

    async def cap_changes_left(self, work: CampaignUnitOfWork, ad_account_id: str) -> int:
        """How many more times people may change the account's cap on this UTC day (W10)."""
        used = await work.store.cap_changes_on(ad_account_id, utc_day_of(self.clock.now()))
        return max(0, MAXIMUM_CAP_CHANGES_PER_UTC_DAY - used)

    async def read_cap(self, work: CampaignUnitOfWork, caller: Caller, ad_account_id: str) -> StoredCap:
        account = await self._ad_account(work, caller, ad_account_id)
        await self._require(work, caller, account.business_center_id, Action.READ)
        stored = await work.store.cap(ad_account_id)
        if stored is None:
            raise NoBudgetCapError(ad_account_id)
        return stored

    async def _save_cap(
        self, work: CampaignUnitOfWork, account: AdAccount, cap: Cap, current: StoredCap | None, *,
        source: Literal["user", "budget_sync"], user_id: str | None,
    ) -> StoredCap:
        now = self.clock.now()
        stored = StoredCap(cap, (current.version if current else 0) + 1, source, user_id, now)
        await work.store.save_cap(account.id, stored)
        work.publish(
            AdAccountBudgetCapChanged(
                ad_account_id=account.id, business_center_id=account.business_center_id, kind=cap.kind.value,
                amount_micros=cap.amount_micros, starts_on=cap.starts_on, ends_on=cap.ends_on,
                currency=account.currency,
                source=source, changed_by_user_id=user_id, version=stored.version, changed_at=now,
            ),
            topic=self.topics.campaign_events, key=account.id,
        )
        return stored

    # What the wallet tells (wallet.events.v1) -----------------------------------------------------

    async def business_center_opened(self, work: CampaignUnitOfWork, event: BusinessCenterOpened) -> None:
        await work.store.add_business_center(event.business_center_id, event.currency, event.opened_at)

    async def ad_account_opened(self, work: CampaignUnitOfWork, event: AdAccountOpened) -> None:
        account = AdAccount(
            event.ad_account_id, event.business_center_id, event.currency, event.draws_on_business_center
        )
        await work.store.add_ad_account(account, event.opened_at)

    async def aba_enabled(self, work: CampaignUnitOfWork, event: AutomaticBalanceAllocationEnabled) -> None:
        """W7: eligible accounts now draw on the BC; W5: Budget Sync's caps become this service's
        caps (source budget_sync, not counted for W10), published like any cap change."""
        store = work.store
        await store.mark_drawing_on_business_center(list(event.eligible_ad_account_ids))
        for sync in event.budget_syncs:
            if not sync.synced:
                continue
            account = await store.ad_account(sync.ad_account_id)
            cap = budget_sync_cap(sync.budget_kind, sync.budget_micros)
            if account is None or cap is None:
                continue
            await store.lock_ad_account(account.id)
            current = await store.cap(account.id, for_update=True)
            if current is None or current.cap != cap or current.source != "budget_sync":
                await self._save_cap(work, account, cap, current, source="budget_sync", user_id=None)

    async def hold_placed(self, work: CampaignUnitOfWork, event: HoldPlaced) -> None:
        campaign = await self._answered(work, event.requested_by, event.hold_id)
        if campaign is not None:
            await self._apply(work, domain.hold_placed(campaign, event.hold_id, event.held_micros), None)

    async def hold_rejected(self, work: CampaignUnitOfWork, event: HoldRejected) -> None:
        campaign = await self._answered(work, event.requested_by, event.hold_id)
        if campaign is None:
            return
        decision = domain.hold_refused(campaign, event.hold_id, event.error)
        if not decision.changed:
            # Not a refusal for want of money of a hold being placed: another environment's
            # wallet on the shared topic, or a refused resize/resolution. Kept for an operator.
            log.warning(
                "campaign_hold_refusal_recorded", campaign_id=campaign.id, hold_id=event.hold_id, error=event.error
            )
            await work.store.record_hold_error(campaign.id, event.error)
            return
        await self._apply(work, decision, None)

    async def hold_resolved(self, work: CampaignUnitOfWork, event: HoldResolved) -> None:
        campaign = await self._answered(work, event.requested_by, event.hold_id)
        if campaign is not None:
            await self._apply(work, domain.hold_resolved(campaign, event.hold_id), None)

    async def funds_received(self, work: CampaignUnitOfWork, event: FundsReceived) -> None:
        """C1: the wallet credited our shortfall invoice: hold the rest (not on InvoicePaid, which
        could overtake the wallet's credit)."""
        campaign_id = await work.store.campaign_id_of_open_invoice(event.invoice_id)
        if campaign_id is None:
            return
        campaign = await self._known(work, campaign_id)
        await self._apply(work, domain.funds_received(campaign, event.invoice_id), None)

    # Spend and delivery (S3, C5) -------------------------------------------------------------------

    async def spend_posted(self, work: CampaignUnitOfWork, event: SpendPosted) -> None:
        campaign = await work.store.campaign(event.campaign_id, for_update=True)
        if campaign is None or campaign.ad_account_id != event.ad_account_id:
            return  # another environment's campaign on the shared topic
        decision = domain.spend_posted(
            campaign, amount_micros=event.amount_micros, from_booking_micros=event.from_booking_micros
        )
        await self._apply(work, decision, None)

    async def delivery_decided(self, work: CampaignUnitOfWork, event: DeliveryDecided) -> None:
        if event.campaign_id is not None:
            campaign_ids = [event.campaign_id]
        else:
            campaign_ids = await work.store.campaign_ids_of_ad_account(event.ad_account_id)
        for campaign_id in campaign_ids:
            campaign = await work.store.campaign(campaign_id, for_update=True)
            if campaign is None or campaign.ad_account_id != event.ad_account_id:
                continue
            if event.action == "pause":
                decision = domain.delivery_paused(campaign, event.reason)
            else:
                decision = domain.delivery_resumed(campaign)
            await self._apply(work, decision, None)

    # Deadlines (C3, C4, T1) -------------------------------------------------------------------------

    async def act_on_next_due_deadline(self, work: CampaignUnitOfWork) -> str | None:
        """Act on one due deadline and mark it done in the same transaction; None when none is due."""
        now = self.clock.now()
        deadline = await work.store.take_due_deadline(now)
        if deadline is None:
            return None
        campaign = await self._known(work, deadline.campaign_id)
        decision = domain.end_reached(campaign, now) if deadline.kind == "end" else domain.settle(campaign)
        after = await self._apply(work, decision, None)
        if not decision.changed:
            outcome = NO_LONGER_DUE
        elif deadline.kind == "end":
            outcome = "ended"
        else:
            outcome = f"settled:credited={domain.credited_micros(after)}"
        await work.store.mark_deadline_done(deadline, outcome, now)
        log.info("campaign_deadline_done", campaign_id=campaign.id, kind=deadline.kind, outcome=outcome)
        return outcome

    # Helpers ---------------------------------------------------------------------------------------

    async def _apply(
        self, work: CampaignUnitOfWork, decision: Decision, user_id: str | None, *, created: bool = False
    ) -> Campaign:
        before, after = decision.before, decision.after
        now = self.clock.now()
        if decision.changed or created:
            await work.store.save_campaign(after, now)
        owner = after.payer_owner_id or after.ad_account_id
        for effect in decision.effects:
            if isinstance(effect, domain.PlaceHoldEffect):
                work.publish(
                    PlaceHold(
                        idempotency_key=f"{effect.hold_id}:place", hold_id=effect.hold_id, owner_id=effect.owner_id,
                        amount_micros=effect.amount_micros, currency=after.currency, purpose="campaign_booking",
                        allow_partial=True, requested_by=SERVICE,
                    ),
                    topic=self.topics.wallet_commands, key=effect.owner_id,
                )
            elif isinstance(effect, domain.ResizeHoldEffect):
                work.publish(
                    ResizeHold(
                        idempotency_key=f"{effect.hold_id}:resize", hold_id=effect.hold_id,
                        new_hold_id=effect.new_hold_id, amount_micros=effect.amount_micros, requested_by=SERVICE,
                    ),
                    topic=self.topics.wallet_commands, key=owner,
                )
            elif isinstance(effect, domain.ResolveHoldEffect):
                work.publish(
                    ResolveHold(
                        idempotency_key=f"{effect.hold_id}:resolve", hold_id=effect.hold_id, action=effect.action,
                        amount_micros=effect.amount_micros, requested_by=SERVICE,
                    ),
                    topic=self.topics.wallet_commands, key=owner,
                )
            elif isinstance(effect, domain.IssueInvoiceEffect):
                work.publish(
                    IssueInvoice(
                        idempotency_key=effect.invoice_id, invoice_id=effect.invoice_id, owner_id=effect.owner_id,
                        amount_micros=effect.amount_micros, currency=after.currency, purpose="activation_shortfall",
                        reference_id=after.id,
                        description=f"Prepaid campaign {after.name}: the part of its budget the balance does not cover",
                        requested_by=SERVICE,
                    ),
                    topic=self.topics.invoicing_commands, key=effect.owner_id,
                )
            elif isinstance(effect, domain.ScheduleDeadline):
                await work.store.schedule_deadline(after.id, effect.kind, effect.due_at)
        if created or after.version != before.version:
            work.publish(
                CampaignChanged(
                    campaign_id=after.id, ad_account_id=after.ad_account_id,
                    business_center_id=after.business_center_id, name=after.name, funding_mode=after.funding_mode,
                    budget_kind=after.budget_kind, budget_micros=after.budget_micros, booked_micros=after.booked_micros,
                    currency=after.currency,
                    status=after.status.value, previous_status=None if created else before.status.value,
                    pause_cause=after.pause_cause.value if after.pause_cause else None, starts_at=after.starts_at,
                    ends_at=after.ends_at, version=after.version, changed_by_user_id=user_id, changed_at=now,
                ),
                topic=self.topics.campaign_events, key=after.ad_account_id,
            )
        return after

    async def _answered(self, work: CampaignUnitOfWork, requested_by: str, hold_id: str) -> Campaign | None:
        if requested_by != SERVICE:
            return None
        campaign_id = await work.store.campaign_id_of_hold(hold_id)
        if campaign_id is None:
            return None  # another environment's campaign on the shared topic
        return await self._known(work, campaign_id)

    async def _known(self, work: CampaignUnitOfWork, campaign_id: str) -> Campaign:
        """A campaign this service's own records name (a hold, an invoice, a deadline), locked."""
        campaign = await work.store.campaign(campaign_id, for_update=True)
        if campaign is None:
            raise UnknownCampaignError(campaign_id)
        return campaign

    async def _campaign(
        self, work: CampaignUnitOfWork, caller: Caller, campaign_id: str, *, for_update: bool
    ) -> Campaign:
        """The campaign, if the caller may know of it (W9); otherwise the answer of one that does not exist."""
        caller.require_scope(API_SCOPE)
        campaign = await work.store.campaign(campaign_id, for_update=for_update)
        if campaign is None or not _may_know_of(caller, campaign.business_center_id):
            raise UnknownCampaignError(campaign_id)
        return campaign

    async def _managed(self, work: CampaignUnitOfWork, caller: Caller, campaign_id: str) -> Campaign:
        """A campaign the caller may manage (W9: Admin or Operator), locked for the change."""
        campaign = await self._campaign(work, caller, campaign_id, for_update=True)
        await self._require(work, caller, campaign.business_center_id, Action.MANAGE_CAMPAIGNS)
        return campaign

    async def _ad_account(self, work: CampaignUnitOfWork, caller: Caller, ad_account_id: str) -> AdAccount:
        """The ad account, if the caller may know of it (W9); otherwise the answer of one that does not exist."""
        caller.require_scope(API_SCOPE)
        account = await work.store.ad_account(ad_account_id)
        if account is None or not _may_know_of(caller, account.business_center_id):
            raise UnknownAdAccountError(ad_account_id)
        return account

    async def _require(self, work: CampaignUnitOfWork, caller: Caller, business_center_id: str, action: Action) -> None:
        """W9, from the platform's one table; raises the platform's `PermissionDeniedError`."""
        caller.require(
            business_center_id, action, finance_roles_set_up=await work.store.finance_roles_set_up(business_center_id)
        )


def _may_know_of(caller: Caller, business_center_id: str) -> bool:
    """W9: what is in a Business Center is known to its members (any role) and platform operators."""
    return caller.platform_operator or caller.is_member_of(business_center_id)


class DueDeadlines:
    """The periodic job of C3/C4 and the scheduled ends: act on every due deadline, one
    transaction each, exactly once (`take_due_deadline` skips what another instance holds, and the
    deadline is marked done in the same transaction). Tests move the ManualClock and call `run`
    themselves (T1)."""

    def __init__(self, transactions: Transactions, campaigns: Campaigns, *, batch_limit: int = 1000) -> None:
        self._transactions = transactions
        self._campaigns = campaigns
        self._batch_limit = batch_limit

    async def run(self) -> int:
        acted = 0
        for _ in range(self._batch_limit):
            async with self._transactions() as work:
                outcome = await self._campaigns.act_on_next_due_deadline(work)
            if outcome is None:
                break
            if outcome != NO_LONGER_DUE:
                acted += 1
        return acted
