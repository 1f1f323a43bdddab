"""The campaign HTTP API: typed requests and answers, roles from the bearer token (W9), one
idempotency key per command (M5), a typed 4xx per rejection.

Auth, kept simple like the order-escrow service's: a bearer token maps to a user (only its
SHA-256 is stored). The platform operator's token (`ADLEDGER_PLATFORM_TOKEN`) creates users and
gives them roles per Business Center (Admin, Finance Manager, Operator, Analyst); an Admin of a
Business Center may give roles in it too. Campaigns are run by Admins and Operators; caps are
changed by Admins and Finance Managers (only Admins without finance roles, W9); any role reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from adledger_campaign.adapters import postgres as store
from adledger_campaign.core import AlreadyExistsError, Caller, Campaigns
from adledger_campaign.domain import campaigns as domain
from adledger_campaign.domain.campaigns import Campaign
from adledger_campaign.domain.caps import Cap, CapKind, InvalidCapError, PermissionDeniedError, Role, TooManyCapChangesError
from adledger_libs.api import AuthenticatedApi, Call, Endpoint, UnauthenticatedError
from adledger_libs.http import AlreadyExists, ApiError, InvalidValue, NotFound, PermissionDenied, RejectionTable, rejection_handler
from adledger_libs.money import PositiveMicros
from adledger_libs.outbox import OutboxRelay, UnitOfWork


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CreateUser(_Model):
    """A new user of the API (the platform operator only)."""

    id: str = Field(min_length=1, max_length=128, description="The user's id.")
    name: str = Field(min_length=1, max_length=200, description="A name for people.")


class UserCreated(_Model):
    id: str = Field(description="The user's id.")
    token: str = Field(description="The bearer token; shown once, only its hash is kept.")


class GrantRole(_Model):
    role: Literal["admin", "finance_manager", "operator", "analyst"] = Field(description="The role in the Business Center (W9).")


class RoleGranted(_Model):
    business_center_id: str
    user_id: str
    role: str


class CreateCampaign(_Model):
    """A campaign of an ad account the wallet opened (Admin or Operator of its Business Center)."""

    ad_account_id: str = Field(min_length=1, max_length=128, description="The ad account.")
    name: str = Field(min_length=1, max_length=200, description="For people.")
    funding_mode: Literal["drawdown", "prepaid"] = Field(
        description="drawdown: spends from the balances in real time; prepaid: books its budget as holds at activation (C1)."
    )
    budget_kind: Literal["lifetime", "daily"] = Field(default="lifetime", description="A prepaid campaign books a lifetime budget.")
    budget_micros: PositiveMicros = Field(description="The campaign budget, at least the minimum (C2).")
    starts_at: datetime | None = Field(default=None, description="Schedule start (UTC).")
    ends_at: datetime | None = Field(default=None, description="Schedule end (UTC); at it the campaign ends (C3, C4).")


class ChangeBudget(_Model):
    budget_micros: PositiveMicros = Field(description="The new budget: a lower one releases the difference at once (C2).")


class HoldAnswer(_Model):
    hold_id: str = Field(description="The wallet hold's id.")
    amount_micros: int = Field(description="What it holds (or was asked to hold).")
    state: str = Field(description="placing, held, resize_placing, releasing, released, settling, settled, rejected.")
    posted_micros: int | None = Field(description="At settlement: what was posted to the platform.")


class CampaignAnswer(_Model):
    id: str
    ad_account_id: str
    business_center_id: str | None
    name: str
    funding_mode: str
    budget_kind: str
    budget_micros: int
    booked_micros: int = Field(description="Prepaid: what the wallet holds for it now (C1, C2).")
    delivered_micros: int = Field(description="Prepaid: spend delivered from the booking; drawdown: spend posted.")
    currency: str
    status: str = Field(description="draft, awaiting_payment, active, paused, ended (C5).")
    pause_cause: str | None = Field(description="user, budget or funds when paused.")
    starts_at: datetime | None
    ends_at: datetime | None
    version: int
    activation_requested: bool = Field(description="Activated by a user; a prepaid draft waits for the wallet's answer.")
    payer_owner_id: str | None = Field(description="Whose cash holds the booking (the BC's under ABA, W7).")
    open_invoice_id: str | None = Field(description="The shortfall invoice it waits for (C1).")
    settled: bool = Field(description="Its booking was settled (C3, C4).")
    credited_micros: int = Field(description="What the settlement gave back to the balance.")
    holds: list[HoldAnswer]
    hold_error: str | None = Field(default=None, description="The last wallet refusal that changed nothing, for an operator.")


class SetCap(_Model):
    """An ad account's budget cap (W10): monthly, daily, custom (a date range) or unlimited."""

    kind: Literal["monthly", "daily", "custom", "unlimited"]
    amount_micros: int | None = Field(default=None, ge=0, description="The cap for the period; none for unlimited.")
    starts_on: date | None = Field(default=None, description="First UTC day of a custom cap.")
    ends_on: date | None = Field(default=None, description="Last UTC day of a custom cap.")


class CapAnswer(_Model):
    ad_account_id: str
    kind: str
    amount_micros: int | None
    starts_on: date | None
    ends_on: date | None
    source: str = Field(description="user, or budget_sync (W5).")
    version: int
    changed_by_user_id: str | None
    changed_at: datetime
    changed: bool = Field(description="False when the request set the cap it already had (not counted for W10).")


# Typed errors -------------------------------------------------------------------------------------------


class TooManyCapChanges(ApiError):
    status_code, code = 429, "too_many_cap_changes"


class BudgetBelowMinimum(ApiError):
    status_code, code = 422, "budget_below_minimum"


class CampaignState(ApiError):
    status_code, code = 409, "campaign_state"


REJECTION_TABLE: RejectionTable = [
    ((PermissionDeniedError,), PermissionDenied),
    ((store.UnknownCampaignError, store.UnknownAdAccountError, store.UnknownUserError), NotFound),
    ((AlreadyExistsError,), AlreadyExists),
    ((TooManyCapChangesError,), TooManyCapChanges),
    ((domain.BudgetBelowMinimumError,), BudgetBelowMinimum),
    ((domain.CampaignStateError,), CampaignState),
    ((domain.InvalidCampaignError, InvalidCapError), InvalidValue),
]
answer_rejection = rejection_handler(REJECTION_TABLE)
REJECTIONS: tuple[type[Exception], ...] = (
    domain.CampaignError, PermissionDeniedError, AlreadyExistsError, TooManyCapChangesError, InvalidCapError, LookupError,
)


class CampaignApi(AuthenticatedApi[Caller]):
    def __init__(self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay], campaigns: Campaigns) -> None:
        super().__init__(pool, relay, service="campaign")
        self._campaigns = campaigns

    async def caller(self, uow: UnitOfWork, call: Call) -> Caller:
        found = await store.user_by_token(uow.conn, call.bearer_token or "")
        if found is None:
            raise UnauthenticatedError("the bearer token is not known")
        return Caller(found)

    def endpoints(self) -> list[Endpoint]:
        campaigns = self._campaigns

        async def create_user(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: CreateUser = call.body
            return 201, UserCreated(id=body.id, token=await campaigns.create_user(uow, caller, body.id, body.name))

        async def grant_role(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            business_center_id, user_id = call.path["business_center_id"], call.path["user_id"]
            await campaigns.grant_role(uow, caller, business_center_id, user_id, Role(call.body.role))
            return 200, RoleGranted(business_center_id=business_center_id, user_id=user_id, role=call.body.role)

        async def create_campaign(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: CreateCampaign = call.body
            campaign = await campaigns.create_campaign(
                uow, caller, ad_account_id=body.ad_account_id, name=body.name, funding_mode=body.funding_mode,
                budget_kind=body.budget_kind, budget_micros=body.budget_micros, starts_at=body.starts_at, ends_at=body.ends_at,
            )
            return 201, _campaign_answer(campaign)

        async def read_campaign(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            campaign, hold_error = await campaigns.read_campaign(uow, caller, call.path["campaign_id"])
            return 200, _campaign_answer(campaign, hold_error)

        async def activate(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, _campaign_answer(await campaigns.activate(uow, caller, call.path["campaign_id"]))

        async def pause(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, _campaign_answer(await campaigns.pause(uow, caller, call.path["campaign_id"]))

        async def resume(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, _campaign_answer(await campaigns.resume(uow, caller, call.path["campaign_id"]))

        async def change_budget(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            campaign = await campaigns.change_budget(uow, caller, call.path["campaign_id"], call.body.budget_micros)
            return 200, _campaign_answer(campaign)

        async def set_cap(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: SetCap = call.body
            cap = Cap(CapKind(body.kind), body.amount_micros, body.starts_on, body.ends_on)
            stored, changed = await campaigns.set_cap(uow, caller, call.path["ad_account_id"], cap)
            return 200, _cap_answer(call.path["ad_account_id"], stored, changed)

        async def read_cap(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            stored = await campaigns.read_cap(uow, caller, call.path["ad_account_id"])
            if stored is None:
                raise NotFound(f"ad account {call.path['ad_account_id']} has no budget cap set")
            return 200, _cap_answer(call.path["ad_account_id"], stored, True)

        forbidden = (PermissionDenied, NotFound)
        state = (*forbidden, CampaignState)
        path = "/v1/campaigns/{campaign_id}"
        member = "/v1/business-centers/{business_center_id}/members/{user_id}"
        cap_path = "/v1/ad-accounts/{ad_account_id}/budget-cap"
        return [
            Endpoint("POST", "/v1/users", "Create a user and get their bearer token (platform operator)", self.command("POST", "/v1/users", create_user), UserCreated, CreateUser, 201, (PermissionDenied, AlreadyExists), tags=("users",)),
            Endpoint("PUT", member, "Give a user a role in a Business Center (platform operator or its Admin; W9)", self.command("PUT", member, grant_role), RoleGranted, GrantRole, errors=forbidden, tags=("users",)),
            Endpoint("POST", "/v1/campaigns", "Create a campaign, a draft (Admin or Operator)", self.command("POST", "/v1/campaigns", create_campaign), CampaignAnswer, CreateCampaign, 201, (*forbidden, BudgetBelowMinimum, InvalidValue), tags=("campaigns",)),
            Endpoint("GET", path, "Read a campaign (any role in its Business Center)", self.query(read_campaign), CampaignAnswer, errors=forbidden, tags=("campaigns",)),
            Endpoint("POST", path + "/activate", "Activate: drawdown at once; prepaid books its whole budget as holds, invoicing any shortfall (C1)", self.command("POST", path + "/activate", activate), CampaignAnswer, None, errors=state, tags=("campaigns",)),
            Endpoint("POST", path + "/pause", "Pause by hand (reason manual; C5)", self.command("POST", path + "/pause", pause), CampaignAnswer, None, errors=state, tags=("campaigns",)),
            Endpoint("POST", path + "/resume", "Resume a campaign a user paused (C5)", self.command("POST", path + "/resume", resume), CampaignAnswer, None, errors=state, tags=("campaigns",)),
            Endpoint("PUT", path + "/budget", "Change the budget; a lower prepaid budget releases the difference at once, the minimum undoes an activation (C2)", self.command("PUT", path + "/budget", change_budget), CampaignAnswer, ChangeBudget, errors=(*state, BudgetBelowMinimum, InvalidValue), tags=("campaigns",)),
            Endpoint("PUT", cap_path, "Set an ad account's budget cap (Finance Manager or Admin; W9, at most 10 changes per UTC day, W10)", self.command("PUT", cap_path, set_cap), CapAnswer, SetCap, errors=(*forbidden, TooManyCapChanges, InvalidValue), tags=("caps",)),
            Endpoint("GET", cap_path, "Read an ad account's budget cap (any role)", self.query(read_cap), CapAnswer, errors=forbidden, tags=("caps",)),
        ]


def _campaign_answer(campaign: Campaign, hold_error: str | None = None) -> CampaignAnswer:
    return CampaignAnswer(
        id=campaign.id, ad_account_id=campaign.ad_account_id, business_center_id=campaign.business_center_id, name=campaign.name,
        funding_mode=campaign.funding_mode, budget_kind=campaign.budget_kind, budget_micros=campaign.budget_micros,
        booked_micros=campaign.booked_micros, delivered_micros=campaign.delivered_micros, currency=campaign.currency,
        status=campaign.status.value, pause_cause=campaign.pause_cause.value if campaign.pause_cause else None,
        starts_at=campaign.starts_at, ends_at=campaign.ends_at, version=campaign.version,
        activation_requested=campaign.activation_requested, payer_owner_id=campaign.payer_owner_id,
        open_invoice_id=campaign.open_invoice_id, settled=campaign.settled, credited_micros=domain.credited_micros(campaign),
        holds=[HoldAnswer(hold_id=h.hold_id, amount_micros=h.amount_micros, state=h.state.value, posted_micros=h.posted_micros) for h in campaign.holds],
        hold_error=hold_error,
    )


def _cap_answer(ad_account_id: str, stored: store.StoredCap, changed: bool) -> CapAnswer:
    cap = stored.cap
    return CapAnswer(
        ad_account_id=ad_account_id, kind=cap.kind.value, amount_micros=cap.amount_micros, starts_on=cap.starts_on,
        ends_on=cap.ends_on, source=stored.source, version=stored.version, changed_by_user_id=stored.changed_by_user_id,
        changed_at=stored.changed_at, changed=changed,
    )
