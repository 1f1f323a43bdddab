"""The campaign use cases (rules C1-C5, W5, W9, W10, S3): campaigns created, activated, paused,
budgeted and ended; caps set; and what the other services answer.

Money moves only through the wallet: this service sends `PlaceHold` / `ResizeHold` /
`ResolveHold` on `wallet.commands.v1` and `IssueInvoice` on `invoicing.commands.v1` through the
outbox, in the same transaction as the campaign's change, and reads `wallet.events.v1` (accounts,
holds, payments), `spend.posted.v1` (what was delivered) and `delivery.control.v1` (pauses).
Every change of a campaign or a cap is published as a versioned snapshot on `campaign.events.v1`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from adledger_campaign.adapters import postgres as store
from adledger_campaign.domain import campaigns as domain
from adledger_campaign.domain.campaigns import Campaign, Decision
from adledger_campaign.domain.caps import Cap, PermissionDeniedError, Role, budget_sync_cap, may_manage_campaigns, plan_cap_change
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
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work

log = get_logger(__name__)

SERVICE = "campaign"
CAMPAIGN_EVENTS_TOPIC = "campaign.events.v1"
WALLET_COMMANDS_TOPIC = "wallet.commands.v1"
INVOICING_COMMANDS_TOPIC = "invoicing.commands.v1"
NO_LONGER_DUE = "no_longer_due"


class AlreadyExistsError(Exception):
    """A user with this id exists already."""


@dataclass(frozen=True)
class Caller:
    user: store.User


@dataclass(frozen=True)
class Topics:
    campaign_events: str = CAMPAIGN_EVENTS_TOPIC
    wallet_commands: str = WALLET_COMMANDS_TOPIC
    invoicing_commands: str = INVOICING_COMMANDS_TOPIC


class Campaigns:
    def __init__(self, clock: Clock, *, minimum_budget_micros: int = 1_000_000, topics: Topics | None = None) -> None:
        self.clock = clock
        self.minimum_budget_micros = minimum_budget_micros
        self.topics = topics or Topics()

    # Users and roles (W9) --------------------------------------------------------------------------

    async def create_user(self, uow: UnitOfWork, caller: Caller, user_id: str, name: str) -> str:
        """The platform operator creates a user and gets their bearer token (shown once)."""
        if not caller.user.platform_operator:
            raise PermissionDeniedError("only the platform operator creates users")
        token = secrets.token_urlsafe(32)
        if not await store.insert_user(uow.conn, user_id, name, token, platform_operator=False, now=self.clock.now()):
            raise AlreadyExistsError(f"user {user_id!r} exists already")
        return token

    async def grant_role(self, uow: UnitOfWork, caller: Caller, business_center_id: str, user_id: str, role: Role) -> None:
        """The platform operator, or an Admin of the Business Center, gives a user a role in it (W9)."""
        if not caller.user.platform_operator and Role.ADMIN not in await store.roles_of(uow.conn, caller.user.id, business_center_id):
            raise PermissionDeniedError(f"user {caller.user.id} is not an admin of business center {business_center_id}")
        await store.require_user(uow.conn, user_id)
        await store.add_membership(uow.conn, business_center_id, user_id, role)

    # Campaigns -----------------------------------------------------------------------------------

    async def create_campaign(
        self, uow: UnitOfWork, caller: Caller, *, ad_account_id: str, name: str, funding_mode: Literal["drawdown", "prepaid"],
        budget_kind: Literal["lifetime", "daily"], budget_micros: int, starts_at: datetime | None, ends_at: datetime | None,
    ) -> Campaign:
        account = await store.load_ad_account(uow.conn, ad_account_id)
        await self._require_manager(uow, caller, account.business_center_id)
        decision = domain.create(
            campaign_id=str(uuid.uuid4()), ad_account_id=account.id, business_center_id=account.business_center_id, name=name,
            funding_mode=funding_mode, budget_kind=budget_kind, budget_micros=budget_micros, currency=account.currency,
            starts_at=starts_at, ends_at=ends_at, minimum_budget_micros=self.minimum_budget_micros, now=self.clock.now(),
        )
        await store.insert_campaign(uow.conn, decision.after, caller.user.id)
        return await self._apply(uow, decision, caller.user.id, created=True)

    async def read_campaign(self, uow: UnitOfWork, caller: Caller, campaign_id: str) -> tuple[Campaign, str | None]:
        campaign = await store.load_campaign(uow.conn, campaign_id)
        if not caller.user.platform_operator and not await store.roles_of(uow.conn, caller.user.id, campaign.business_center_id or ""):
            raise PermissionDeniedError(f"user {caller.user.id} has no role in the campaign's business center")
        return campaign, await store.hold_error(uow.conn, campaign_id)

    async def activate(self, uow: UnitOfWork, caller: Caller, campaign_id: str) -> Campaign:
        """C1: a drawdown campaign is active at once; a prepaid one books its whole budget first."""
        campaign = await self._locked(uow, caller, campaign_id)
        account = await store.load_ad_account(uow.conn, campaign.ad_account_id)
        # W7: an ABA account draws on its Business Center's cash, so its booking is held there.
        payer = account.business_center_id if account.draws_on_business_center else account.id
        return await self._apply(uow, domain.activate(campaign, payer_owner_id=payer), caller.user.id)

    async def pause(self, uow: UnitOfWork, caller: Caller, campaign_id: str) -> Campaign:
        campaign = await self._locked(uow, caller, campaign_id)
        return await self._apply(uow, domain.pause_by_user(campaign), caller.user.id)

    async def resume(self, uow: UnitOfWork, caller: Caller, campaign_id: str) -> Campaign:
        campaign = await self._locked(uow, caller, campaign_id)
        return await self._apply(uow, domain.resume_by_user(campaign), caller.user.id)

    async def change_budget(self, uow: UnitOfWork, caller: Caller, campaign_id: str, budget_micros: int) -> Campaign:
        """C2: a lower budget releases the difference at once; the minimum undoes an activation."""
        campaign = await self._locked(uow, caller, campaign_id)
        decision = domain.change_budget(campaign, budget_micros, minimum_budget_micros=self.minimum_budget_micros)
        return await self._apply(uow, decision, caller.user.id)

    # Caps (W5, W9, W10) -----------------------------------------------------------------------------

    async def set_cap(self, uow: UnitOfWork, caller: Caller, ad_account_id: str, cap: Cap) -> tuple[store.StoredCap, bool]:
        account = await store.load_ad_account(uow.conn, ad_account_id)
        await store.lock_ad_account(uow.conn, ad_account_id)
        now = self.clock.now()
        current = await store.load_cap(uow.conn, ad_account_id, for_update=True)
        # The platform operator acts as an Admin of every Business Center.
        if caller.user.platform_operator:
            roles = frozenset({Role.ADMIN})
        else:
            roles = await store.roles_of(uow.conn, caller.user.id, account.business_center_id)
        change = plan_cap_change(
            user_id=caller.user.id, roles=roles, finance_roles_enabled=await store.finance_roles_enabled(uow.conn, account.business_center_id),
            ad_account_id=ad_account_id, current=current.cap if current else None, new=cap,
            changes_today_count=await store.cap_changes_on(uow.conn, ad_account_id, utc_day_of(now)), moment=now,
        )
        if not change.counted:
            assert current is not None
            return current, False
        await store.record_cap_change(uow.conn, ad_account_id, change.utc_day, caller.user.id, now)
        return await self._save_cap(uow, account, cap, current, source="user", user_id=caller.user.id), True

    async def read_cap(self, uow: UnitOfWork, caller: Caller, ad_account_id: str) -> store.StoredCap | None:
        account = await store.load_ad_account(uow.conn, ad_account_id)
        if not caller.user.platform_operator and not await store.roles_of(uow.conn, caller.user.id, account.business_center_id):
            raise PermissionDeniedError(f"user {caller.user.id} has no role in business center {account.business_center_id}")
        return await store.load_cap(uow.conn, ad_account_id)

    async def _save_cap(
        self, uow: UnitOfWork, account: store.AdAccount, cap: Cap, current: store.StoredCap | None, *, source: str, user_id: str | None
    ) -> store.StoredCap:
        now = self.clock.now()
        version = (current.version if current else 0) + 1
        await store.save_cap(uow.conn, account.id, cap, version=version, source=source, user_id=user_id, now=now)
        uow.publish(
            AdAccountBudgetCapChanged(
                ad_account_id=account.id, business_center_id=account.business_center_id, kind=cap.kind.value,
                amount_micros=cap.amount_micros, starts_on=cap.starts_on, ends_on=cap.ends_on, currency=account.currency,
                source=source, changed_by_user_id=user_id, version=version, changed_at=now,  # type: ignore[arg-type]
            ),
            topic=self.topics.campaign_events, key=account.id,
        )
        return store.StoredCap(cap, version, source, user_id, now)

    # What the wallet tells (wallet.events.v1) ---------------------------------------------------------

    async def business_center_opened(self, uow: UnitOfWork, event: BusinessCenterOpened) -> None:
        await store.insert_business_center(uow.conn, event.business_center_id, event.currency, event.opened_at)

    async def ad_account_opened(self, uow: UnitOfWork, event: AdAccountOpened) -> None:
        account = store.AdAccount(event.ad_account_id, event.business_center_id, event.currency, event.draws_on_business_center)
        await store.insert_ad_account(uow.conn, account, event.opened_at)

    async def aba_enabled(self, uow: UnitOfWork, event: AutomaticBalanceAllocationEnabled) -> None:
        """W7: eligible accounts now draw on the BC; W5: Budget Sync's caps become this service's
        caps (source budget_sync, not counted for W10), published like any cap change."""
        await store.mark_drawing_on_business_center(uow.conn, list(event.eligible_ad_account_ids))
        for sync in event.budget_syncs:
            if not sync.synced:
                continue
            account = await store.find_ad_account(uow.conn, sync.ad_account_id)
            cap = budget_sync_cap(sync.budget_kind, sync.budget_micros)
            if account is None or cap is None:
                continue
            await store.lock_ad_account(uow.conn, account.id)
            current = await store.load_cap(uow.conn, account.id, for_update=True)
            if current is None or current.cap != cap or current.source != "budget_sync":
                await self._save_cap(uow, account, cap, current, source="budget_sync", user_id=None)

    async def hold_placed(self, uow: UnitOfWork, event: HoldPlaced) -> None:
        campaign = await self._answered(uow, event.requested_by, event.hold_id)
        if campaign is not None:
            await self._apply(uow, domain.hold_placed(campaign, event.hold_id, event.held_micros), None)

    async def hold_rejected(self, uow: UnitOfWork, event: HoldRejected) -> None:
        campaign = await self._answered(uow, event.requested_by, event.hold_id)
        if campaign is None:
            return
        decision = domain.hold_refused(campaign, event.hold_id, event.error)
        if not decision.changed:
            # Not a refusal for want of money of a hold being placed: another environment's
            # wallet on the shared topic, or a refused resize/resolution. Kept for an operator.
            log.warning("campaign_hold_refusal_recorded", campaign_id=campaign.id, hold_id=event.hold_id, error=event.error)
            await store.record_hold_error(uow.conn, campaign.id, event.error)
            return
        await self._apply(uow, decision, None)

    async def hold_resolved(self, uow: UnitOfWork, event: HoldResolved) -> None:
        campaign = await self._answered(uow, event.requested_by, event.hold_id)
        if campaign is not None:
            await self._apply(uow, domain.hold_resolved(campaign, event.hold_id), None)

    async def funds_received(self, uow: UnitOfWork, event: FundsReceived) -> None:
        """C1: the wallet credited our shortfall invoice: hold the rest (not on InvoicePaid, which
        could overtake the wallet's credit)."""
        campaign_id = await store.campaign_id_of_invoice(uow.conn, event.invoice_id)
        if campaign_id is None:
            return
        campaign = await store.load_campaign(uow.conn, campaign_id, for_update=True)
        await self._apply(uow, domain.funds_received(campaign, event.invoice_id), None)

    # Spend and delivery (S3, C5) -------------------------------------------------------------------

    async def spend_posted(self, uow: UnitOfWork, event: SpendPosted) -> None:
        campaign = await store.find_campaign(uow.conn, event.campaign_id, for_update=True)
        if campaign is None or campaign.ad_account_id != event.ad_account_id:
            return  # another environment's campaign on the shared topic
        decision = domain.spend_posted(campaign, amount_micros=event.amount_micros, from_booking_micros=event.from_booking_micros)
        await self._apply(uow, decision, None)

    async def delivery_decided(self, uow: UnitOfWork, event: DeliveryDecided) -> None:
        if event.campaign_id is not None:
            campaign_ids = [event.campaign_id]
        else:
            campaign_ids = await store.campaign_ids_of_ad_account(uow.conn, event.ad_account_id)
        for campaign_id in campaign_ids:
            campaign = await store.find_campaign(uow.conn, campaign_id, for_update=True)
            if campaign is None or campaign.ad_account_id != event.ad_account_id:
                continue
            if event.action == "pause":
                decision = domain.delivery_paused(campaign, event.reason)
            else:
                decision = domain.delivery_resumed(campaign)
            await self._apply(uow, decision, None)

    # Deadlines (C3, C4, T1) --------------------------------------------------------------------------

    async def act_on_next_due_deadline(self, uow: UnitOfWork) -> str | None:
        """Act on one due deadline and mark it done in the same transaction; None when none is due."""
        now = self.clock.now()
        deadline = await store.take_due_deadline(uow.conn, now)
        if deadline is None:
            return None
        campaign = await store.load_campaign(uow.conn, deadline.campaign_id, for_update=True)
        decision = domain.end_reached(campaign, now) if deadline.kind == "end" else domain.settle(campaign)
        after = await self._apply(uow, decision, None)
        if not decision.changed:
            outcome = NO_LONGER_DUE
        elif deadline.kind == "end":
            outcome = "ended"
        else:
            outcome = f"settled:credited={domain.credited_micros(after)}"
        await store.mark_deadline_done(uow.conn, deadline, outcome, now)
        log.info("campaign_deadline_done", campaign_id=campaign.id, kind=deadline.kind, outcome=outcome)
        return outcome

    # Helpers ---------------------------------------------------------------------------------------

    async def _apply(self, uow: UnitOfWork, decision: Decision, user_id: str | None, *, created: bool = False) -> Campaign:
        before, after = decision.before, decision.after
        now = self.clock.now()
        if decision.changed or created:
            await store.save_campaign(uow.conn, after, now)
        owner = after.payer_owner_id or after.ad_account_id
        for effect in decision.effects:
            if isinstance(effect, domain.PlaceHoldEffect):
                uow.publish(
                    PlaceHold(
                        idempotency_key=f"{effect.hold_id}:place", hold_id=effect.hold_id, owner_id=effect.owner_id,
                        amount_micros=effect.amount_micros, currency=after.currency, purpose="campaign_booking",
                        allow_partial=True, requested_by=SERVICE,
                    ),
                    topic=self.topics.wallet_commands, key=effect.owner_id,
                )
            elif isinstance(effect, domain.ResizeHoldEffect):
                uow.publish(
                    ResizeHold(
                        idempotency_key=f"{effect.hold_id}:resize", hold_id=effect.hold_id, new_hold_id=effect.new_hold_id,
                        amount_micros=effect.amount_micros, requested_by=SERVICE,
                    ),
                    topic=self.topics.wallet_commands, key=owner,
                )
            elif isinstance(effect, domain.ResolveHoldEffect):
                uow.publish(
                    ResolveHold(
                        idempotency_key=f"{effect.hold_id}:resolve", hold_id=effect.hold_id, action=effect.action,
                        amount_micros=effect.amount_micros, requested_by=SERVICE,
                    ),
                    topic=self.topics.wallet_commands, key=owner,
                )
            elif isinstance(effect, domain.IssueInvoiceEffect):
                uow.publish(
                    IssueInvoice(
                        idempotency_key=effect.invoice_id, invoice_id=effect.invoice_id, owner_id=effect.owner_id,
                        amount_micros=effect.amount_micros, currency=after.currency, purpose="activation_shortfall",
                        reference_id=after.id, description=f"Prepaid campaign {after.name}: the part of its budget the balance does not cover",
                        requested_by=SERVICE,
                    ),
                    topic=self.topics.invoicing_commands, key=effect.owner_id,
                )
            elif isinstance(effect, domain.ScheduleDeadline):
                await store.schedule_deadline(uow.conn, after.id, effect.kind, effect.due_at)
        if created or after.version != before.version:
            uow.publish(
                CampaignChanged(
                    campaign_id=after.id, ad_account_id=after.ad_account_id, business_center_id=after.business_center_id,
                    name=after.name, funding_mode=after.funding_mode, budget_kind=after.budget_kind,
                    budget_micros=after.budget_micros, booked_micros=after.booked_micros, currency=after.currency,
                    status=after.status.value, previous_status=None if created else before.status.value,
                    pause_cause=after.pause_cause.value if after.pause_cause else None, starts_at=after.starts_at,
                    ends_at=after.ends_at, version=after.version, changed_by_user_id=user_id, changed_at=now,
                ),
                topic=self.topics.campaign_events, key=after.ad_account_id,
            )
        return after

    async def _answered(self, uow: UnitOfWork, requested_by: str, hold_id: str) -> Campaign | None:
        if requested_by != SERVICE:
            return None
        campaign_id = await store.campaign_id_of_hold(uow.conn, hold_id)
        if campaign_id is None:
            return None  # another environment's campaign on the shared topic
        return await store.load_campaign(uow.conn, campaign_id, for_update=True)

    async def _locked(self, uow: UnitOfWork, caller: Caller, campaign_id: str) -> Campaign:
        campaign = await store.load_campaign(uow.conn, campaign_id, for_update=True)
        await self._require_manager(uow, caller, campaign.business_center_id or "")
        return campaign

    async def _require_manager(self, uow: UnitOfWork, caller: Caller, business_center_id: str) -> None:
        if caller.user.platform_operator:
            return
        if not may_manage_campaigns(await store.roles_of(uow.conn, caller.user.id, business_center_id)):
            raise PermissionDeniedError(f"user {caller.user.id} is not an admin or operator of business center {business_center_id}")


class DueDeadlines:
    """The periodic job of C3/C4 and the scheduled ends: act on every due deadline, one
    transaction each, exactly once (`FOR UPDATE SKIP LOCKED`, done in the same transaction).
    Tests move the ManualClock and call `run` themselves (T1)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay | None], campaigns: Campaigns, *, batch_limit: int = 1000) -> None:
        self._pool = pool
        self._relay = relay
        self._campaigns = campaigns
        self._batch_limit = batch_limit

    async def run(self) -> int:
        acted = 0
        for _ in range(self._batch_limit):
            async with unit_of_work(self._pool(), self._relay()) as uow:
                outcome = await self._campaigns.act_on_next_due_deadline(uow)
            if outcome is None:
                break
            if outcome != NO_LONGER_DUE:
                acted += 1
        return acted
