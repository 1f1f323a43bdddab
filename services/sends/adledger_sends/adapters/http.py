"""The sends HTTP API (FastAPI): funding sources attached to accounts, teams, user balances, send
campaigns, sends, approvals and final costs (U1-U6). Typed, bounded requests, the caller from the
platform's one identity, one idempotency key per command (M5), a typed 4xx per refusal. Who may do
what is the core's (W9); nothing here decides."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from adledger_auth.http import CurrentCaller
from adledger_auth.roles import PermissionDeniedError
from adledger_contracts.types import Name, ResourceId, Text
from adledger_ledger.domain import LedgerError, OwnerIdTakenError
from adledger_libs.money import CurrencyCode, NonNegativeMicros, PositiveMicros
from adledger_libs.outbox import UnitOfWork
from adledger_libs.web import (
    AUTHENTICATED_ERRORS,
    COMMAND_ERRORS,
    AlreadyExists,
    ApiError,
    CurrencyMismatch,
    Commands,
    IdempotencyKeyHeader,
    InvalidValue,
    NotFound,
    PermissionDenied,
    Refused,
    RejectionTable,
    responses,
)
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from adledger_sends.core import Sends, UserBalanceView
from adledger_sends.domain import sends as domain
from adledger_sends.domain.sends import Send, SendCampaign
from adledger_sends.ports.store import SendsWork, UnknownError


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AttachFundingSource(_Model):
    """An invoicing funding source (I6) the account's sends may use (platform operators)."""

    id: ResourceId = Field(max_length=48, description="The invoicing service's funding source id.")
    business_center_id: ResourceId = Field(description="The account (Business Center) it serves.")
    kind: Literal["prepaid_invoice", "credit_card"] = Field(description="Its type, as registered with invoicing.")
    currency: CurrencyCode = Field(description="Its currency (M2).")


class FundingSourceAnswer(_Model):
    id: str
    business_center_id: str
    kind: str
    currency: str


class SetDefaultSource(_Model):
    funding_source_id: ResourceId = Field(max_length=48, description="Pays for users without a team (U1, U5).")


class CreateTeam(_Model):
    id: ResourceId = Field(description="The team's id.")
    business_center_id: ResourceId = Field(description="The account.")
    name: Name = Field(description="For people.")
    funding_source_id: ResourceId = Field(max_length=48, description="Funds its users' balances (U1, U6).")


class TeamAnswer(_Model):
    id: str
    business_center_id: str
    name: str
    funding_source_id: str


class SetUserBalance(_Model):
    """A user's budget, its schedule and team (Admins; U1, U6)."""

    team_id: ResourceId | None = Field(default=None, description="None: the account's default source pays.")
    budget_micros: NonNegativeMicros = Field(description="The budget of each period.")
    mode: Literal["refresh", "rollover"] = Field(description="refresh: back to the budget; rollover: add it.")
    schedule: Literal["daily", "weekly", "monthly"] = Field(default="monthly", description="The period (UTC).")
    initial_budget_micros: NonNegativeMicros | None = Field(
        default=None, description="A new user's first budget (default: the budget)."
    )


class FundingAnswer(_Model):
    period: str
    reason: str
    amount_micros: int
    funding_source_id: str
    charge_id: str | None
    funded_at: datetime


class UserBalanceAnswer(_Model):
    business_center_id: str
    user_id: str
    team_id: str | None
    funding_source_id: str | None = Field(description="The source that pays: the team's, or the default one.")
    currency: str
    budget_micros: int
    mode: str
    schedule: str
    balance_micros: int = Field(description="What the user can still send, from the ledger.")
    next_period_start: datetime
    fundings: list[FundingAnswer]


class CreateCampaign(_Model):
    id: ResourceId = Field(description="The send campaign's id.")
    business_center_id: ResourceId = Field(description="The account.")
    name: Name = Field(description="For people.")
    charge_to: Literal["user_balance", "funding_source"] = Field(description="What its sends charge (U2, U3).")
    funding_source_id: ResourceId | None = Field(default=None, max_length=48, description="For funding_source.")
    add_funds_allowed: bool = Field(default=True, description="U3: false is the admin's opt-out of add-funds.")
    require_approval: bool = Field(default=True, description="U4: an integration's sends wait for approval.")


class CampaignAnswer(_Model):
    id: str
    business_center_id: str
    name: str
    charge_to: str
    funding_source_id: str | None
    add_funds_allowed: bool
    require_approval: bool


class CreateSend(_Model):
    campaign_id: ResourceId = Field(description="The send campaign.")
    item_kind: Literal["egift", "item"] = Field(description="What is sent.")
    description: Text = Field(min_length=1, max_length=300, description="What it is, for people.")
    price_micros: PositiveMicros = Field(description="Its price at creation.")
    add_funds: bool = Field(default=False, description="U3: add funds when the funding source is short.")


class FinalCost(_Model):
    final_cost_micros: PositiveMicros = Field(description="The warehouse's or marketplace's final cost (U5).")


class SendAnswer(_Model):
    id: str
    business_center_id: str
    campaign_id: str
    sender_user_id: str
    via: str = Field(description="user or integration (U4).")
    item_kind: str
    description: str
    charged_to: str
    funding_source_id: str | None
    price_micros: int
    charged_micros: int = Field(description="What was charged, adjustments included.")
    final_cost_micros: int | None
    currency: str
    state: str = Field(description="awaiting_approval, charged, rejected, adjusted.")
    version: int


ListLimit = Annotated[int, Query(ge=1, le=200, description="At most this many (1-200).")]
SendStateFilter = Annotated[
    Literal["awaiting_approval", "charged", "rejected", "adjusted"] | None,
    Query(description="Only sends in this state."),
]


class InsufficientUserBalance(ApiError):
    status_code, code = 409, "insufficient_user_balance"


class InsufficientFunds(ApiError):
    status_code, code = 409, "insufficient_funds"


class AddFundsDisabled(ApiError):
    status_code, code = 409, "add_funds_disabled"


class ApprovalRequired(ApiError):
    status_code, code = 409, "approval_required"


class SendState(ApiError):
    status_code, code = 409, "send_state"


class FundingSourceRequired(ApiError):
    status_code, code = 409, "funding_source_required"


class NoFundingSource(ApiError):
    status_code, code = 409, "no_funding_source"


REJECTIONS: RejectionTable = [
    ((PermissionDeniedError,), PermissionDenied),
    ((UnknownError,), NotFound),
    ((domain.InsufficientUserBalanceError,), InsufficientUserBalance),
    ((domain.InsufficientFundsError,), InsufficientFunds),
    ((domain.AddFundsDisabledError,), AddFundsDisabled),
    ((domain.ApprovalRequiredError,), ApprovalRequired),
    ((domain.SendStateError,), SendState),
    ((domain.IntegrationNeedsFundingSourceError,), FundingSourceRequired),
    ((domain.NoFundingSourceError,), NoFundingSource),
    ((domain.CurrencyMismatchError,), CurrencyMismatch),
    ((OwnerIdTakenError,), AlreadyExists),
    ((domain.InvalidSendsValueError,), InvalidValue),
    ((LedgerError,), Refused),
]
PUBLIC_PATHS: tuple[str, ...] = ()

Unit = Callable[[UnitOfWork], SendsWork]


def router(sends: Sends, commands: Commands, unit: Unit) -> APIRouter:
    api = APIRouter()
    base = (*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound)

    @api.post("/v1/funding-sources", status_code=201, response_model=FundingSourceAnswer, tags=["funding-sources"],
              summary="Attach an invoicing funding source to an account (platform operators; I6)",
              responses=responses(*base, CurrencyMismatch, InvalidValue))
    async def attach(body: AttachFundingSource, caller: CurrentCaller, key: IdempotencyKeyHeader,
                     request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            found = await sends.attach_funding_source(unit(uow), caller, body.id, body.business_center_id, body.kind,
                                                      body.currency)
            return 201, FundingSourceAnswer(**found)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.put("/v1/business-centers/{business_center_id}/default-funding-source", response_model=SetDefaultSource,
             tags=["teams"], summary="Set the account's default funding source (Admins; U1, U5)",
             responses=responses(*base))
    async def set_default(business_center_id: ResourceId, body: SetDefaultSource, caller: CurrentCaller,
                          key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            await sends.set_default_source(unit(uow), caller, business_center_id, body.funding_source_id)
            return 200, body

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.post("/v1/teams", status_code=201, response_model=TeamAnswer, tags=["teams"],
              summary="Create a team with its funding source (Admins; U1)", responses=responses(*base, InvalidValue))
    async def create_team(body: CreateTeam, caller: CurrentCaller, key: IdempotencyKeyHeader,
                          request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            team = await sends.create_team(unit(uow), caller, body.id, body.business_center_id, body.name,
                                           body.funding_source_id)
            return 201, TeamAnswer(**team)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    reads = responses(*AUTHENTICATED_ERRORS, PermissionDenied, NotFound)
    account_path = "/v1/business-centers/{business_center_id}"

    @api.get(f"{account_path}/teams", response_model=list[TeamAnswer], tags=["teams"],
             summary="List an account's teams and their funding sources (any role of the account; U1)",
             responses=reads)
    async def list_teams(business_center_id: ResourceId, caller: CurrentCaller,
                         limit: ListLimit = 100) -> list[TeamAnswer]:
        teams = await commands.read(lambda uow: sends.list_teams(unit(uow), caller, business_center_id, limit))
        return [TeamAnswer(**team) for team in teams]

    @api.get(f"{account_path}/user-balances", response_model=list[UserBalanceAnswer], tags=["user-balances"],
             summary="List an account's user balances (its Admins; U1, U6)", responses=reads)
    async def list_balances(business_center_id: ResourceId, caller: CurrentCaller,
                            limit: ListLimit = 100) -> list[UserBalanceAnswer]:
        views = await commands.read(
            lambda uow: sends.list_user_balances(unit(uow), caller, business_center_id, limit)
        )
        return [_balance_answer(view) for view in views]

    @api.get(f"{account_path}/sends", response_model=list[SendAnswer], tags=["sends"],
             summary="List an account's sends, newest first, optionally in one state (any role of the account; U4)",
             responses=reads)
    async def list_sends(business_center_id: ResourceId, caller: CurrentCaller, state: SendStateFilter = None,
                         limit: ListLimit = 100) -> list[SendAnswer]:
        found = await commands.read(
            lambda uow: sends.list_sends(unit(uow), caller, business_center_id, state, limit)
        )
        return [_send_answer(send) for send in found]

    balance_path = "/v1/business-centers/{business_center_id}/user-balances/{user_id}"

    @api.put(balance_path, response_model=UserBalanceAnswer, tags=["user-balances"],
             summary="Set a user's budget, schedule and team; a new one gets its initial budget (Admins; U1, U6)",
             responses=responses(*base, NoFundingSource, CurrencyMismatch, AlreadyExists, InvalidValue, Refused))
    async def set_balance(business_center_id: ResourceId, user_id: ResourceId, body: SetUserBalance,
                          caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            view = await sends.set_user_balance(
                unit(uow), caller, business_center_id, user_id, team_id=body.team_id, budget_micros=body.budget_micros,
                mode=body.mode, schedule=body.schedule, initial_budget_micros=body.initial_budget_micros,
            )
            return 200, _balance_answer(view)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.get(balance_path, response_model=UserBalanceAnswer, tags=["user-balances"],
             summary="Read a user balance (the user, or the account's Admins)",
             responses=responses(*AUTHENTICATED_ERRORS, PermissionDenied, NotFound))
    async def read_balance(business_center_id: ResourceId, user_id: ResourceId,
                           caller: CurrentCaller) -> UserBalanceAnswer:
        view = await commands.read(lambda uow: sends.read_user_balance(unit(uow), caller, business_center_id, user_id))
        return _balance_answer(view)

    @api.post("/v1/send-campaigns", status_code=201, response_model=CampaignAnswer, tags=["send-campaigns"],
              summary="Create a send campaign and its charge setting (Admins; U2-U4)",
              responses=responses(*base, InvalidValue))
    async def create_campaign(body: CreateCampaign, caller: CurrentCaller, key: IdempotencyKeyHeader,
                              request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            campaign = await sends.create_campaign(unit(uow), caller, SendCampaign(
                body.id, body.business_center_id, body.name, body.charge_to, body.funding_source_id,
                body.add_funds_allowed, body.require_approval,
            ))
            return 201, CampaignAnswer(**campaign.__dict__)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    send_errors = responses(*base, InsufficientUserBalance, InsufficientFunds, AddFundsDisabled, FundingSourceRequired,
                            Refused)

    @api.post("/v1/sends", status_code=201, response_model=SendAnswer, tags=["sends"],
              summary="Create a send: charged to the sender's balance (U2) or the campaign's funding source (U3); "
              "an integration's may wait for approval (U4)", responses=send_errors)
    async def create_send(body: CreateSend, caller: CurrentCaller, key: IdempotencyKeyHeader,
                          request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            send = await sends.create_send(
                unit(uow), caller, campaign_id=body.campaign_id, item_kind=body.item_kind,
                description=body.description, price_micros=body.price_micros, add_funds=body.add_funds,
            )
            return 201, _send_answer(send)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.get("/v1/sends/{send_id}", response_model=SendAnswer, tags=["sends"],
             summary="Read a send (its sender, or any role in its account)",
             responses=responses(*AUTHENTICATED_ERRORS, PermissionDenied, NotFound))
    async def read_send(send_id: ResourceId, caller: CurrentCaller) -> SendAnswer:
        return _send_answer(await commands.read(lambda uow: sends.read_send(unit(uow), caller, send_id)))

    for verb, approve in (("approve", True), ("reject", False)):
        def decide_route(approve: bool = approve) -> Callable[..., object]:
            async def decide(send_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader,
                             request: Request) -> JSONResponse:
                async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
                    return 200, _send_answer(await sends.decide(unit(uow), caller, send_id, approve=approve))

                return await commands.run(request, caller_id=caller.user_id, key=key, body=None, apply=apply)

            return decide

        api.add_api_route(
            f"/v1/sends/{{send_id}}/{verb}", decide_route(), methods=["POST"], response_model=SendAnswer,
            tags=["sends"], name=f"{verb}_send",
            summary=f"{verb.capitalize()} a send waiting for approval (Admins; U4)"
            + (": it is charged now" if approve else ": it is never charged"),
            responses=responses(*base, SendState, InsufficientFunds, AddFundsDisabled, Refused),
        )

    @api.post("/v1/sends/{send_id}/final-cost", response_model=SendAnswer, tags=["sends"],
              summary="Report a send's final cost: an adjustment charge or the difference back (platform operators; "
              "U5)", responses=responses(*base, ApprovalRequired, SendState, NoFundingSource, Refused))
    async def final_cost(send_id: ResourceId, body: FinalCost, caller: CurrentCaller, key: IdempotencyKeyHeader,
                         request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            return 200, _send_answer(await sends.record_final_cost(unit(uow), caller, send_id, body.final_cost_micros))

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    return api


def _balance_answer(view: UserBalanceView) -> UserBalanceAnswer:
    return UserBalanceAnswer(**{**view.__dict__, "fundings": [FundingAnswer(**f) for f in view.fundings]})


def _send_answer(send: Send) -> SendAnswer:
    return SendAnswer(**{name: getattr(send, name) for name in SendAnswer.model_fields})
