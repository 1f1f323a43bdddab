"""The wallet's HTTP API (FastAPI): typed requests and answers, the caller verified against the
platform's one identity, one idempotency key per command (M5), and a typed 4xx for every rejection.
Users and their roles are the identity service's (POST /v1/users and the members endpoints live
there); a caller with no role in a Business Center gets the answer of one that does not exist."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from adledger_auth.http import CurrentCaller
from adledger_auth.roles import PermissionDeniedError
from adledger_contracts.types import Name, ResourceId
from adledger_ledger import domain as ledger_domain
from adledger_ledger.owners import OwnerBalance
from adledger_libs.money import CurrencyCode, CurrencyMismatchError, NonNegativeMicros, PositiveMicros
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
    RejectionTable,
    answer_links,
    link,
    responses,
)
from adledger_wallet.core import AdAccountExistsError, BusinessCenterExistsError, UnknownOwnerError, Wallet
from adledger_wallet.domain import errors as domain_errors
from adledger_wallet.domain.allocation import AllocationBucket, AllocationDirection
from adledger_wallet.domain.model import AdAccount, AdAccountType, BillingOption, Budget, BudgetKind, BusinessCenter
from adledger_wallet.ports.store import UnknownAdAccountError, UnknownBusinessCenterError, UnknownUserError

# Requests and answers ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpenBusinessCenter(_Model):
    id: ResourceId = Field(description="The Business Center's id (unique across every owner of money).")
    name: Name = Field(description="A name for people.")
    currency: CurrencyCode
    credit_limit_micros: NonNegativeMicros = Field(default=0, description="The credit line the platform grants.")
    admin_user_id: ResourceId = Field(description="The user (of the identity service) who becomes its first Admin.")


class BudgetBody(_Model):
    kind: Literal["monthly", "daily", "custom", "unlimited"] = Field(description="The kind of cap (W10).")
    amount_micros: NonNegativeMicros | None = Field(default=None, description="The cap; null for unlimited.")
    starts_on: date | None = Field(default=None, description="First UTC day of a custom budget.")
    ends_on: date | None = Field(default=None, description="Last UTC day of a custom budget.")

    def to_domain(self) -> Budget:
        return Budget(BudgetKind(self.kind), self.amount_micros, self.starts_on, self.ends_on)


class OpenAdAccount(_Model):
    id: ResourceId = Field(description="The ad account's id (unique across every owner of money).")
    name: Name = Field(description="A name for people.")
    type: Literal["auction", "reservation"] = Field(description="Ad account type (W3).")
    billing_option: Literal["monthly_invoicing", "prepaid"] = Field(description="Billing option (W3).")
    budget: BudgetBody | None = Field(default=None, description="Its budget cap, if any.")


class SetCreditLine(_Model):
    credit_limit_micros: NonNegativeMicros = Field(description="The new credit limit.")


class GrantVouchers(_Model):
    amount_micros: PositiveMicros


class Allocate(_Model):
    ad_account_id: ResourceId = Field(description="The ad account.")
    bucket: Literal["cash", "vouchers"] = Field(description="What to move (W6).")
    direction: Literal["to_ad_account", "to_business_center"] = Field(description="Which way.")
    amount_micros: PositiveMicros
    currency: CurrencyCode


class BusinessCenterAnswer(_Model):
    id: str
    name: str
    currency: str
    aba_enabled: bool
    credit_limit_micros: int


class AdAccountAnswer(_Model):
    id: str
    business_center_id: str
    type: str
    billing_option: str
    currency: str
    budget: BudgetBody | None


class Buckets(_Model):
    cash: int
    credit_line: int
    vouchers: int


class BalanceAnswer(_Model):
    """An owner's balance, the same figures as `balances.v1` (W11)."""

    owner_id: str
    owner_kind: str
    currency: str
    real_micros: int = Field(description="Paid money in minus posted spend and fees (W11).")
    virtual_micros: int = Field(description="Real balance minus open holds (W11).")
    available_micros: int = Field(description="What can still be spent: every bucket less its holds.")
    overspend_micros: int = Field(description="Spend served after the funds ran out, not yet covered (S2); zero or negative.")
    held_micros: int = Field(description="Open holds on the owner's buckets.")
    buckets: Buckets


class DailyBalanceAnswer(_Model):
    """An owner's balances at the close of one UTC day (W13), never rewritten."""

    owner_id: str
    owner_kind: str
    day: date = Field(description="The UTC day; its close is 00:00:00 UTC of the next day.")
    currency: str
    real_micros: int = Field(description="Real balance at the close (W11).")
    virtual_micros: int = Field(description="Virtual balance at the close: real less the holds open then (W11).")
    taken_at: datetime = Field(description="When the snapshot was written (later than the close after downtime).")


class AbaEnabledAnswer(_Model):
    business_center_id: str
    eligible_ad_account_ids: list[str]
    ineligible_ad_account_ids: list[str]
    cash_moved_micros: dict[str, int]
    budgets: dict[str, dict[str, Any] | None]


class Done(_Model):
    ok: bool = True


# Typed errors ---------------------------------------------------------------------------------------


class InsufficientFunds(ApiError):
    status_code, code = 409, "insufficient_funds"


class AbaAlreadyEnabled(ApiError):
    status_code, code = 409, "aba_already_enabled"


class AbaIsOneWay(ApiError):
    status_code, code = 409, "aba_is_one_way"


class NotEligible(ApiError):
    status_code, code = 409, "not_eligible"


#: The core's rejections and their answers; the first matching row wins.
REJECTIONS: RejectionTable = [
    ((PermissionDeniedError,), PermissionDenied),
    ((UnknownBusinessCenterError, UnknownAdAccountError, UnknownUserError, UnknownOwnerError), NotFound),
    ((BusinessCenterExistsError, AdAccountExistsError, ledger_domain.OwnerIdTakenError), AlreadyExists),
    ((domain_errors.InsufficientFundsError, ledger_domain.InsufficientFundsError), InsufficientFunds),
    ((CurrencyMismatchError,), CurrencyMismatch),
    ((domain_errors.AbaAlreadyEnabledError,), AbaAlreadyEnabled),
    ((domain_errors.AbaIsOneWayError,), AbaIsOneWay),
    ((domain_errors.ManualCashAllocationUnderAbaError, domain_errors.AdAccountNotOwnedError), NotEligible),
    ((domain_errors.InvalidAmountError, domain_errors.InvalidBudgetError, ledger_domain.LedgerError), InvalidValue),
]


# Routes ------------------------------------------------------------------------------------------------


def router(wallet: Wallet, commands: Commands) -> APIRouter:
    api = APIRouter()
    hidden = (NotFound,)
    read_errors = responses(*AUTHENTICATED_ERRORS, *hidden)

    def command_errors(*errors: type[ApiError]) -> dict[int | str, dict[str, Any]]:
        return responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, *errors)

    business_center_path = "/v1/business-centers/{business_center_id}"

    def business_center_links(expression: str) -> dict[str, dict[str, Any]]:
        """Where a Business Center an answer names is used next (OpenAPI links)."""
        named = {"business_center_id": expression}
        return {
            "read": link(business_center_path, "get", **named),
            "list_ad_accounts": link(business_center_path + "/ad-accounts", "get", **named),
            "open_ad_account": link(business_center_path + "/ad-accounts", "post", **named),
            "enable_aba": link(business_center_path + "/aba", "post", **named),
            "allocate": link(business_center_path + "/allocations", "post", **named),
            "set_credit_line": link(business_center_path + "/credit-line", "put", **named),
            "grant_vouchers": link(business_center_path + "/vouchers", "post", **named),
            "balance": link("/v1/balances/{owner_id}", "get", owner_id=expression),
            "history": link("/v1/balances/{owner_id}/history", "get", owner_id=expression),
        }

    async def run(request: Request, caller: Any, key: str, body: BaseModel | None, apply: Any) -> JSONResponse:
        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.post("/v1/business-centers", status_code=201, response_model=BusinessCenterAnswer, tags=["business centers"],
              summary="Open a Business Center (platform operators; W1); its admin_user_id becomes its first Admin",
              responses={**command_errors(PermissionDenied, NotFound, AlreadyExists),
                         **answer_links(201, "The Business Center opened", **business_center_links("$response.body#/id"))})
    async def open_business_center(body: OpenBusinessCenter, caller: CurrentCaller, key: IdempotencyKeyHeader,
                                   request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            opened = await wallet.open_business_center(
                uow, caller, body.id, body.name, body.currency, body.credit_limit_micros, body.admin_user_id
            )
            return 201, _business_center_answer(opened, body.name)

        return await run(request, caller, key, body, apply)

    @api.get("/v1/business-centers/{business_center_id}", response_model=BusinessCenterAnswer,
             tags=["business centers"], summary="Read a Business Center (any of its roles)",
             responses={**read_errors, **answer_links(200, "The Business Center", **business_center_links("$response.body#/id"))})
    async def read_business_center(business_center_id: ResourceId, caller: CurrentCaller) -> BusinessCenterAnswer:
        found, name = await commands.read(lambda uow: wallet.business_center(uow, caller, business_center_id))
        return _business_center_answer(found, name)

    @api.put("/v1/business-centers/{business_center_id}/credit-line", response_model=BusinessCenterAnswer,
             tags=["business centers"], summary="Set the credit line (platform operators)",
             responses=command_errors(PermissionDenied, NotFound, InsufficientFunds))
    async def set_credit_line(business_center_id: ResourceId, body: SetCreditLine, caller: CurrentCaller,
                              key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            await wallet.set_credit_limit(uow, caller, business_center_id, body.credit_limit_micros)
            found, name = await wallet.business_center(uow, caller, business_center_id)
            return 200, _business_center_answer(found, name)

        return await run(request, caller, key, body, apply)

    @api.post("/v1/business-centers/{business_center_id}/vouchers", response_model=BalanceAnswer,
              tags=["business centers"], summary="Grant vouchers (platform operators; W6)",
              responses=command_errors(PermissionDenied, NotFound))
    async def grant_vouchers(business_center_id: ResourceId, body: GrantVouchers, caller: CurrentCaller,
                             key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            await wallet.grant_vouchers(uow, caller, business_center_id, body.amount_micros, key)
            return 200, _balance_answer(await wallet.balance_of(uow, caller, business_center_id))

        return await run(request, caller, key, body, apply)

    @api.post("/v1/business-centers/{business_center_id}/ad-accounts", status_code=201, response_model=AdAccountAnswer,
              tags=["ad accounts"], summary="Open an ad account (Admin; W1)",
              responses={
                  **command_errors(PermissionDenied, NotFound, AlreadyExists, InvalidValue),
                  **answer_links(
                      201, "The ad account opened",
                      balance=link("/v1/balances/{owner_id}", "get", owner_id="$response.body#/id"),
                      history=link("/v1/balances/{owner_id}/history", "get", owner_id="$response.body#/id"),
                      allocate=link(business_center_path + "/allocations", "post",
                                    business_center_id="$response.body#/business_center_id"),
                      list_ad_accounts=link(business_center_path + "/ad-accounts", "get",
                                            business_center_id="$response.body#/business_center_id"),
                  ),
              })
    async def open_ad_account(business_center_id: ResourceId, body: OpenAdAccount, caller: CurrentCaller,
                              key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            account = await wallet.open_ad_account(
                uow, caller, business_center_id, body.id, body.name, AdAccountType(body.type),
                BillingOption(body.billing_option), body.budget.to_domain() if body.budget else None,
            )
            return 201, _ad_account_answer(account)

        return await run(request, caller, key, body, apply)

    @api.get("/v1/business-centers/{business_center_id}/ad-accounts", response_model=list[AdAccountAnswer],
             tags=["ad accounts"], summary="List the Business Center's ad accounts (any of its roles)",
             responses=read_errors)
    async def list_ad_accounts(business_center_id: ResourceId, caller: CurrentCaller) -> list[AdAccountAnswer]:
        accounts = await commands.read(lambda uow: wallet.ad_accounts(uow, caller, business_center_id))
        return [_ad_account_answer(account) for account in accounts]

    @api.post("/v1/business-centers/{business_center_id}/aba", response_model=AbaEnabledAnswer, tags=["allocation"],
              summary="Enable Automatic Balance Allocation, one-way (Admin; W2-W5)",
              responses=command_errors(PermissionDenied, NotFound, AbaAlreadyEnabled, InsufficientFunds))
    async def enable_aba(business_center_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader,
                         request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            event = await wallet.enable_aba(uow, caller, business_center_id)
            return 200, AbaEnabledAnswer(
                business_center_id=event.business_center_id,
                eligible_ad_account_ids=event.eligible_ad_account_ids,
                ineligible_ad_account_ids=event.ineligible_ad_account_ids,
                cash_moved_micros={move.ad_account_id: move.amount_micros for move in event.cash_moves},
                budgets={
                    sync.ad_account_id: {"kind": sync.budget_kind, "amount_micros": sync.budget_micros}
                    if sync.budget_kind else None
                    for sync in event.budget_syncs
                },
            )

        return await run(request, caller, key, None, apply)

    @api.delete("/v1/business-centers/{business_center_id}/aba", response_model=Done, tags=["allocation"],
                summary="Switch back to manual allocation: rejected once ABA is on (W2)",
                responses=command_errors(PermissionDenied, NotFound, AbaIsOneWay))
    async def disable_aba(business_center_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader,
                          request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            await wallet.switch_to_manual_allocation(uow, caller, business_center_id)
            return 200, Done()

        return await run(request, caller, key, None, apply)

    @api.post("/v1/business-centers/{business_center_id}/allocations", response_model=BalanceAnswer, tags=["allocation"],
              summary="Allocate cash or vouchers by hand (Finance Manager or Admin; W6, W9)",
              responses=command_errors(PermissionDenied, NotFound, InsufficientFunds, CurrencyMismatch, NotEligible,
                                       InvalidValue))
    async def allocate(business_center_id: ResourceId, body: Allocate, caller: CurrentCaller, key: IdempotencyKeyHeader,
                       request: Request) -> JSONResponse:
        direction = (
            AllocationDirection.BUSINESS_CENTER_TO_AD_ACCOUNT if body.direction == "to_ad_account"
            else AllocationDirection.AD_ACCOUNT_TO_BUSINESS_CENTER
        )

        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            await wallet.allocate(
                uow, caller, business_center_id, body.ad_account_id, AllocationBucket(body.bucket), direction,
                body.amount_micros, body.currency, key,
            )
            return 200, _balance_answer(await wallet.balance_of(uow, caller, body.ad_account_id))

        return await run(request, caller, key, body, apply)

    @api.get("/v1/balances/{owner_id}", response_model=BalanceAnswer, tags=["balances"],
             summary="Read a Business Center's or ad account's balance (W11)", responses=read_errors)
    async def read_balance(owner_id: ResourceId, caller: CurrentCaller) -> BalanceAnswer:
        return _balance_answer(await commands.read(lambda uow: wallet.balance_of(uow, caller, owner_id)))

    @api.get("/v1/balances/{owner_id}/history", response_model=list[DailyBalanceAnswer], tags=["balances"],
             summary="Real and virtual balances at each UTC day close, from and to inclusive (W13)",
             responses=responses(*AUTHENTICATED_ERRORS, NotFound, InvalidValue))
    async def read_history(
        owner_id: ResourceId, caller: CurrentCaller,
        from_day: date | None = Query(default=None, alias="from", description="First UTC day, YYYY-MM-DD."),
        to_day: date | None = Query(default=None, alias="to", description="Last UTC day, YYYY-MM-DD."),
    ) -> list[DailyBalanceAnswer]:
        if from_day and to_day and from_day > to_day:
            raise InvalidValue("from is after to")
        snapshots = await commands.read(lambda uow: wallet.history(uow, caller, owner_id, from_day, to_day))
        return [
            DailyBalanceAnswer(
                owner_id=item.owner_id, owner_kind=item.owner_kind, day=item.day, currency=item.currency,
                real_micros=item.real_micros, virtual_micros=item.virtual_micros, taken_at=item.taken_at,
            )
            for item in snapshots
        ]

    return api


def _business_center_answer(business_center: BusinessCenter, name: str) -> BusinessCenterAnswer:
    return BusinessCenterAnswer(
        id=business_center.id, name=name, currency=business_center.currency, aba_enabled=business_center.aba_enabled,
        credit_limit_micros=business_center.credit_limit_micros,
    )


def _ad_account_answer(account: AdAccount) -> AdAccountAnswer:
    budget = account.budget
    return AdAccountAnswer(
        id=account.id,
        business_center_id=account.business_center_id,
        type=account.type.value,
        billing_option=account.billing_option.value,
        currency=account.currency,
        budget=BudgetBody(kind=budget.kind.value, amount_micros=budget.amount_micros, starts_on=budget.starts_on,
                          ends_on=budget.ends_on) if budget else None,
    )


def _balance_answer(item: OwnerBalance) -> BalanceAnswer:
    return BalanceAnswer(
        owner_id=item.owner_id,
        owner_kind=item.owner_kind,
        currency=item.currency,
        real_micros=item.real_micros,
        virtual_micros=item.virtual_micros,
        available_micros=item.available_micros,
        overspend_micros=item.overspend_micros,
        held_micros=item.cash_held_micros + item.vouchers_held_micros + item.credit_line_held_micros,
        buckets=Buckets(cash=item.cash_micros + item.overspend_micros, credit_line=item.credit_line_micros,
                        vouchers=item.vouchers_micros),
    )
