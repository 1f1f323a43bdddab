"""The campaign HTTP API (FastAPI): campaigns and ad-account budget caps. Typed, bounded requests
(the platform's shared field types), the caller from the platform's one identity (a session token
or an API key, verified before the body is read), one idempotency key per command (M5), a typed
4xx per rejection. Who may do what is the core's (W9); nothing here decides."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Literal

from adledger_auth.http import CurrentCaller
from adledger_auth.roles import PermissionDeniedError
from adledger_contracts.types import Name, ResourceId, UtcDatetime
from adledger_libs.money import NonNegativeMicros, PositiveMicros
from adledger_libs.outbox import UnitOfWork
from adledger_libs.web import (
    AUTHENTICATED_ERRORS,
    COMMAND_ERRORS,
    ApiError,
    Commands,
    IdempotencyKeyHeader,
    InvalidValue,
    NotFound,
    PermissionDenied,
    RejectionTable,
    responses,
)
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from adledger_campaign.core import Campaigns
from adledger_campaign.domain import campaigns as domain
from adledger_campaign.domain.campaigns import Campaign
from adledger_campaign.domain.caps import Cap, CapKind, InvalidCapError, TooManyCapChangesError
from adledger_campaign.ports.store import NoBudgetCapError, StoredCap, UnknownAdAccountError, UnknownCampaignError
from adledger_campaign.ports.unit_of_work import CampaignUnitOfWork

# Requests and answers ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CreateCampaign(_Model):
    """A campaign of an ad account the wallet opened (Admin or Operator of its Business Center)."""

    ad_account_id: ResourceId = Field(description="The ad account.")
    name: Name = Field(description="For people.")
    funding_mode: Literal["drawdown", "prepaid"] = Field(
        description="drawdown: spends from the balances in real time; prepaid: books its budget as holds at "
        "activation (C1)."
    )
    budget_kind: Literal["lifetime", "daily"] = Field(
        default="lifetime", description="A prepaid campaign books a lifetime budget."
    )
    budget_micros: PositiveMicros = Field(description="The campaign budget, at least the minimum (C2).")
    starts_at: UtcDatetime | None = Field(default=None, description="Schedule start (UTC).")
    ends_at: UtcDatetime | None = Field(
        default=None, description="Schedule end (UTC); at it the campaign ends (C3, C4)."
    )


class ChangeBudget(_Model):
    budget_micros: PositiveMicros = Field(
        description="The new budget: a lower one releases the difference at once (C2)."
    )


class HoldAnswer(_Model):
    hold_id: str = Field(description="The wallet hold's id.")
    amount_micros: int = Field(description="What it holds (or was asked to hold).")
    state: str = Field(description="placing, held, resize_placing, releasing, released, settling, settled, rejected.")
    posted_micros: int | None = Field(description="At settlement: what was posted to the platform.")


class CampaignAnswer(_Model):
    id: str
    ad_account_id: str
    business_center_id: str
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
    activation_requested: bool = Field(
        description="Activated by a user; a prepaid draft waits for the wallet's answer."
    )
    payer_owner_id: str | None = Field(description="Whose cash holds the booking (the BC's under ABA, W7).")
    open_invoice_id: str | None = Field(description="The shortfall invoice it waits for (C1).")
    settled: bool = Field(description="Its booking was settled (C3, C4).")
    credited_micros: int = Field(description="What the settlement gave back to the balance.")
    holds: list[HoldAnswer]
    hold_error: str | None = Field(
        default=None, description="The last wallet refusal that changed nothing, for an operator."
    )


class SetCap(_Model):
    """An ad account's budget cap (W10): monthly, daily, custom (a date range) or unlimited."""

    kind: Literal["monthly", "daily", "custom", "unlimited"]
    amount_micros: NonNegativeMicros | None = Field(
        default=None, description="The cap for the period; none for unlimited."
    )
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
    changes_left_today: int = Field(description="How many more changes people may make on this UTC day (W10: 10 a day).")


# Typed errors ------------------------------------------------------------------------------------


class TooManyCapChanges(ApiError):
    status_code, code = 429, "too_many_cap_changes"


class BudgetBelowMinimum(ApiError):
    status_code, code = 422, "budget_below_minimum"


class CampaignState(ApiError):
    status_code, code = 409, "campaign_state"


#: The core's refusals and their answers (first match wins). Not found and not yours are one row.
REJECTIONS: RejectionTable = [
    ((PermissionDeniedError,), PermissionDenied),
    ((UnknownCampaignError, UnknownAdAccountError, NoBudgetCapError), NotFound),
    ((TooManyCapChangesError,), TooManyCapChanges),
    ((domain.BudgetBelowMinimumError,), BudgetBelowMinimum),
    ((domain.CampaignStateError,), CampaignState),
    ((domain.InvalidCampaignError, InvalidCapError), InvalidValue),
]
#: Every route needs a bearer token.
PUBLIC_PATHS: tuple[str, ...] = ()

Unit = Callable[[UnitOfWork], CampaignUnitOfWork]


def router(campaigns: Campaigns, commands: Commands, unit: Unit) -> APIRouter:
    """`unit` gives the core's unit of work over a command's or a query's transaction (inject.py)."""
    api = APIRouter()
    read_errors = responses(*AUTHENTICATED_ERRORS, PermissionDenied, NotFound)
    state_errors = responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound, CampaignState)
    campaign_path = "/v1/campaigns/{campaign_id}"
    cap_path = "/v1/ad-accounts/{ad_account_id}/budget-cap"

    @api.post("/v1/campaigns", status_code=201, response_model=CampaignAnswer, tags=["campaigns"],
              summary="Create a campaign, a draft (Admin or Operator)",
              responses=responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound,
                                  BudgetBelowMinimum, InvalidValue))
    async def create_campaign(body: CreateCampaign, caller: CurrentCaller, key: IdempotencyKeyHeader,
                              request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            campaign = await campaigns.create_campaign(
                unit(uow), caller, ad_account_id=body.ad_account_id, name=body.name, funding_mode=body.funding_mode,
                budget_kind=body.budget_kind, budget_micros=body.budget_micros, starts_at=body.starts_at,
                ends_at=body.ends_at,
            )
            return 201, _campaign_answer(campaign)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.get(campaign_path, response_model=CampaignAnswer, tags=["campaigns"],
             summary="Read a campaign (any role in its Business Center)", responses=read_errors)
    async def read_campaign(campaign_id: ResourceId, caller: CurrentCaller) -> CampaignAnswer:
        campaign, hold_error = await commands.read(lambda uow: campaigns.read_campaign(unit(uow), caller, campaign_id))
        return _campaign_answer(campaign, hold_error)

    @api.get("/v1/ad-accounts/{ad_account_id}/campaigns", response_model=list[CampaignAnswer], tags=["campaigns"],
             summary="List an ad account's campaigns (any role in its Business Center)", responses=read_errors)
    async def list_campaigns(ad_account_id: ResourceId, caller: CurrentCaller) -> list[CampaignAnswer]:
        found = await commands.read(lambda uow: campaigns.campaigns_of_ad_account(unit(uow), caller, ad_account_id))
        return [_campaign_answer(campaign) for campaign in found]

    @api.post(campaign_path + "/activate", response_model=CampaignAnswer, tags=["campaigns"],
              summary="Activate: drawdown at once; prepaid books its whole budget as holds, invoicing any "
              "shortfall (C1)",
              responses=state_errors)
    async def activate(campaign_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader,
                       request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            return 200, _campaign_answer(await campaigns.activate(unit(uow), caller, campaign_id))

        return await commands.run(request, caller_id=caller.user_id, key=key, body=None, apply=apply)

    @api.post(campaign_path + "/pause", response_model=CampaignAnswer, tags=["campaigns"],
              summary="Pause by hand (reason manual; C5)", responses=state_errors)
    async def pause(campaign_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader,
                    request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            return 200, _campaign_answer(await campaigns.pause(unit(uow), caller, campaign_id))

        return await commands.run(request, caller_id=caller.user_id, key=key, body=None, apply=apply)

    @api.post(campaign_path + "/resume", response_model=CampaignAnswer, tags=["campaigns"],
              summary="Resume a campaign a user paused (C5)", responses=state_errors)
    async def resume(campaign_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader,
                     request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            return 200, _campaign_answer(await campaigns.resume(unit(uow), caller, campaign_id))

        return await commands.run(request, caller_id=caller.user_id, key=key, body=None, apply=apply)

    @api.put(campaign_path + "/budget", response_model=CampaignAnswer, tags=["campaigns"],
             summary="Change the budget; a lower prepaid budget releases the difference at once, the minimum undoes "
             "an activation (C2)",
             responses=responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound, CampaignState,
                                 BudgetBelowMinimum, InvalidValue))
    async def change_budget(campaign_id: ResourceId, body: ChangeBudget, caller: CurrentCaller,
                            key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            campaign = await campaigns.change_budget(unit(uow), caller, campaign_id, body.budget_micros)
            return 200, _campaign_answer(campaign)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.put(cap_path, response_model=CapAnswer, tags=["caps"],
             summary="Set an ad account's budget cap (Finance Manager or Admin; W9, at most 10 changes per UTC day, "
             "W10)",
             responses=responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound, TooManyCapChanges,
                                 InvalidValue))
    async def set_cap(ad_account_id: ResourceId, body: SetCap, caller: CurrentCaller, key: IdempotencyKeyHeader,
                      request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            def cap() -> Cap:  # made once the caller may set it (who asks is checked first)
                return Cap(CapKind(body.kind), body.amount_micros, body.starts_on, body.ends_on)

            work = unit(uow)
            stored, changed = await campaigns.set_cap(work, caller, ad_account_id, cap)
            return 200, _cap_answer(ad_account_id, stored, changed, await campaigns.cap_changes_left(work, ad_account_id))

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.get(cap_path, response_model=CapAnswer, tags=["caps"],
             summary="Read an ad account's budget cap (any role in its Business Center)", responses=read_errors)
    async def read_cap(ad_account_id: ResourceId, caller: CurrentCaller) -> CapAnswer:
        async def read(uow: UnitOfWork) -> tuple[StoredCap, int]:
            work = unit(uow)
            stored = await campaigns.read_cap(work, caller, ad_account_id)
            return stored, await campaigns.cap_changes_left(work, ad_account_id)

        stored, left = await commands.read(read)
        return _cap_answer(ad_account_id, stored, True, left)

    return api


def _campaign_answer(campaign: Campaign, hold_error: str | None = None) -> CampaignAnswer:
    return CampaignAnswer(
        id=campaign.id, ad_account_id=campaign.ad_account_id, business_center_id=campaign.business_center_id,
        name=campaign.name, funding_mode=campaign.funding_mode, budget_kind=campaign.budget_kind,
        budget_micros=campaign.budget_micros, booked_micros=campaign.booked_micros,
        delivered_micros=campaign.delivered_micros, currency=campaign.currency, status=campaign.status.value,
        pause_cause=campaign.pause_cause.value if campaign.pause_cause else None, starts_at=campaign.starts_at,
        ends_at=campaign.ends_at, version=campaign.version, activation_requested=campaign.activation_requested,
        payer_owner_id=campaign.payer_owner_id, open_invoice_id=campaign.open_invoice_id, settled=campaign.settled,
        credited_micros=domain.credited_micros(campaign),
        holds=[
            HoldAnswer(hold_id=hold.hold_id, amount_micros=hold.amount_micros, state=hold.state.value,
                       posted_micros=hold.posted_micros)
            for hold in campaign.holds
        ],
        hold_error=hold_error,
    )


def _cap_answer(ad_account_id: str, stored: StoredCap, changed: bool, changes_left_today: int) -> CapAnswer:
    cap = stored.cap
    return CapAnswer(
        ad_account_id=ad_account_id, kind=cap.kind.value, amount_micros=cap.amount_micros, starts_on=cap.starts_on,
        ends_on=cap.ends_on, source=stored.source, version=stored.version, changed_by_user_id=stored.changed_by_user_id,
        changed_at=stored.changed_at, changed=changed, changes_left_today=changes_left_today,
    )
