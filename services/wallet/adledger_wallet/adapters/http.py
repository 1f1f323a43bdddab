"""The wallet's HTTP API: typed requests and answers, roles from the bearer token, one
idempotency key per command (M5), and a typed 4xx for every rejection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from adledger_ledger import domain as ledger_domain
from adledger_ledger.owners import OwnerBalance
from adledger_libs.api import AuthenticatedApi, Call, Endpoint, UnauthenticatedError
from adledger_libs.http import (
    AlreadyExists,
    ApiError,
    InvalidValue,
    NotFound,
    PermissionDenied,
    RejectionTable,
    rejection_handler,
)
from adledger_libs.money import CurrencyCode, CurrencyMismatchError, Micros, PositiveMicros
from adledger_libs.outbox import OutboxRelay, UnitOfWork
from adledger_wallet import day_closes
from adledger_wallet.adapters import postgres as store
from adledger_wallet.core import (
    AdAccountExistsError,
    BusinessCenterExistsError,
    Caller,
    PlatformOperatorRequiredError,
    UnknownOwnerError,
    Wallet,
)
from adledger_wallet.domain import errors as domain_errors
from adledger_wallet.domain.allocation import AllocationBucket, AllocationDirection
from adledger_wallet.domain.model import AdAccount, AdAccountType, BillingOption, Budget, BudgetKind
from adledger_wallet.domain.aba import check_switch_to_manual_allocation
from adledger_wallet.domain.roles import Action, Role, authorize

# Requests and answers ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CreateUser(_Model):
    """A new user of the API (platform operators only)."""

    id: str = Field(min_length=1, max_length=128, description="The user's id.")
    name: str = Field(min_length=1, max_length=200, description="A name for people.")


class UserCreated(_Model):
    id: str = Field(description="The user's id.")
    token: str = Field(description="The bearer token; shown once, only its hash is kept.")


class OpenBusinessCenter(_Model):
    id: str = Field(min_length=1, max_length=128, description="The Business Center's id.")
    name: str = Field(min_length=1, max_length=200, description="A name for people.")
    currency: CurrencyCode
    credit_limit_micros: Micros = Field(default=0, ge=0, description="The credit line the platform grants.")
    admin_user_id: str = Field(min_length=1, max_length=128, description="The user who becomes its first Admin.")


class BudgetBody(_Model):
    kind: Literal["monthly", "daily", "custom", "unlimited"] = Field(description="The kind of cap (W10).")
    amount_micros: Micros | None = Field(default=None, ge=0, description="The cap; null for unlimited.")
    starts_on: date | None = Field(default=None, description="First UTC day of a custom budget.")
    ends_on: date | None = Field(default=None, description="Last UTC day of a custom budget.")

    def to_domain(self) -> Budget:
        return Budget(BudgetKind(self.kind), self.amount_micros, self.starts_on, self.ends_on)


class OpenAdAccount(_Model):
    id: str = Field(min_length=1, max_length=128, description="The ad account's id.")
    name: str = Field(min_length=1, max_length=200, description="A name for people.")
    type: Literal["auction", "reservation"] = Field(description="Ad account type (W3).")
    billing_option: Literal["monthly_invoicing", "prepaid"] = Field(description="Billing option (W3).")
    budget: BudgetBody | None = Field(default=None, description="Its budget cap, if any.")


class GrantRole(_Model):
    role: Literal["admin", "finance_manager", "operator", "analyst"] = Field(description="The role (W9).")


class SetCreditLine(_Model):
    credit_limit_micros: Micros = Field(ge=0, description="The new credit limit.")


class GrantVouchers(_Model):
    amount_micros: PositiveMicros


class Allocate(_Model):
    ad_account_id: str = Field(min_length=1, max_length=128, description="The ad account.")
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


class CurrencyMismatch(ApiError):
    status_code, code = 422, "currency_mismatch"


class AbaAlreadyEnabled(ApiError):
    status_code, code = 409, "aba_already_enabled"


class AbaIsOneWay(ApiError):
    status_code, code = 409, "aba_is_one_way"


class NotEligible(ApiError):
    status_code, code = 409, "not_eligible"


#: The core's rejections and their answers; the first matching row wins.
REJECTION_TABLE: RejectionTable = [
    ((domain_errors.PermissionDeniedError, PlatformOperatorRequiredError), PermissionDenied),
    ((store.UnknownBusinessCenterError, store.UnknownAdAccountError, store.UnknownUserError, UnknownOwnerError), NotFound),
    ((BusinessCenterExistsError, AdAccountExistsError), AlreadyExists),
    ((domain_errors.InsufficientFundsError, ledger_domain.InsufficientFundsError), InsufficientFunds),
    ((CurrencyMismatchError,), CurrencyMismatch),
    ((domain_errors.AbaAlreadyEnabledError,), AbaAlreadyEnabled),
    ((domain_errors.AbaIsOneWayError,), AbaIsOneWay),
    ((domain_errors.ManualCashAllocationUnderAbaError, domain_errors.AdAccountNotOwnedError), NotEligible),
    ((domain_errors.InvalidAmountError, domain_errors.InvalidBudgetError, ledger_domain.InvalidTransferError), InvalidValue),
]
answer_rejection = rejection_handler(REJECTION_TABLE)


REJECTIONS: tuple[type[Exception], ...] = (
    domain_errors.WalletError,
    ledger_domain.LedgerError,
    PlatformOperatorRequiredError,
    LookupError,
    BusinessCenterExistsError,
    AdAccountExistsError,
    CurrencyMismatchError,
)


# Endpoints --------------------------------------------------------------------------------------------


class WalletApi(AuthenticatedApi[Caller]):
    def __init__(self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay], wallet: Wallet) -> None:
        super().__init__(pool, relay, service="wallet")
        self._wallet = wallet

    async def caller(self, uow: UnitOfWork, call: Call) -> Caller:
        found = await store.user_by_token(uow.conn, call.bearer_token or "")
        if found is None:
            raise UnauthenticatedError("the bearer token is not known")
        user, platform_operator = found
        return Caller(user, platform_operator)

    def endpoints(self) -> list[Endpoint]:
        wallet = self._wallet

        async def create_user(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            token = await wallet.create_user(uow, caller, call.body.id, call.body.name)
            return 201, UserCreated(id=call.body.id, token=token)

        async def open_business_center(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: OpenBusinessCenter = call.body
            await wallet.open_business_center(uow, caller, body.id, body.name, body.currency, body.credit_limit_micros, body.admin_user_id)
            return 201, await _business_center_answer(uow, body.id)

        async def grant_role(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            await wallet.grant_role(uow, caller, call.path["business_center_id"], call.path["user_id"], Role(call.body.role))
            return 200, Done()

        async def open_ad_account(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: OpenAdAccount = call.body
            account = await wallet.open_ad_account(
                uow, caller, call.path["business_center_id"], body.id, body.name, AdAccountType(body.type),
                BillingOption(body.billing_option), body.budget.to_domain() if body.budget else None,
            )
            return 201, _ad_account_answer(account)

        async def set_credit_line(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            await wallet.set_credit_limit(uow, caller, call.path["business_center_id"], call.body.credit_limit_micros)
            return 200, await _business_center_answer(uow, call.path["business_center_id"])

        async def grant_vouchers(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            assert call.idempotency_key is not None
            await wallet.grant_vouchers(uow, caller, call.path["business_center_id"], call.body.amount_micros, call.idempotency_key)
            return 200, _balance_answer(await wallet.balance_of(uow, caller, call.path["business_center_id"]))

        async def enable_aba(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            event = await wallet.enable_aba(uow, caller, call.path["business_center_id"])
            return 200, AbaEnabledAnswer(
                business_center_id=event.business_center_id,
                eligible_ad_account_ids=event.eligible_ad_account_ids,
                ineligible_ad_account_ids=event.ineligible_ad_account_ids,
                cash_moved_micros={move.ad_account_id: move.amount_micros for move in event.cash_moves},
                budgets={
                    sync.ad_account_id: {"kind": sync.budget_kind, "amount_micros": sync.budget_micros} if sync.budget_kind else None
                    for sync in event.budget_syncs
                },
            )

        async def disable_aba(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            business_center = await store.load_business_center(uow.conn, call.path["business_center_id"])
            authorize(caller.user, business_center, Action.ENABLE_ABA)
            check_switch_to_manual_allocation(business_center)
            return 200, Done()

        async def allocate(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: Allocate = call.body
            assert call.idempotency_key is not None
            direction = (
                AllocationDirection.BUSINESS_CENTER_TO_AD_ACCOUNT if body.direction == "to_ad_account"
                else AllocationDirection.AD_ACCOUNT_TO_BUSINESS_CENTER
            )
            await wallet.allocate(
                uow, caller, call.path["business_center_id"], body.ad_account_id, AllocationBucket(body.bucket),
                direction, body.amount_micros, body.currency, call.idempotency_key,
            )
            return 200, _balance_answer(await wallet.balance_of(uow, caller, body.ad_account_id))

        async def read_business_center(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            await wallet.balance_of(uow, caller, call.path["business_center_id"])  # authorizes reading
            return 200, await _business_center_answer(uow, call.path["business_center_id"])

        async def list_ad_accounts(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            await wallet.balance_of(uow, caller, call.path["business_center_id"])
            return 200, [_ad_account_answer(a) for a in await store.load_ad_accounts(uow.conn, call.path["business_center_id"])]

        async def read_balance(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            return 200, _balance_answer(await wallet.balance_of(uow, caller, call.path["owner_id"]))

        async def read_history(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            await wallet.balance_of(uow, caller, call.path["owner_id"])  # authorizes reading
            try:
                from_day = date.fromisoformat(call.query["from"]) if call.query.get("from") else None
                to_day = date.fromisoformat(call.query["to"]) if call.query.get("to") else None
            except ValueError as error:
                raise InvalidValue(f"from and to are days, YYYY-MM-DD: {error}") from None
            if from_day and to_day and from_day > to_day:
                raise InvalidValue("from is after to")
            snapshots = await day_closes.history(uow.conn, call.path["owner_id"], from_day, to_day)
            return 200, [
                DailyBalanceAnswer(
                    owner_id=item.owner_id, owner_kind=item.owner_kind, day=item.day, currency=item.currency,
                    real_micros=item.real_micros, virtual_micros=item.virtual_micros, taken_at=item.taken_at,
                )
                for item in snapshots
            ]

        forbidden = (PermissionDenied, NotFound)
        return [
            Endpoint("POST", "/v1/users", "Create a user and get their bearer token (platform operators)", self.command("POST", "/v1/users", create_user), UserCreated, CreateUser, 201, (PermissionDenied,), tags=("users",)),
            Endpoint("POST", "/v1/business-centers", "Open a Business Center (platform operators; W1)", self.command("POST", "/v1/business-centers", open_business_center), BusinessCenterAnswer, OpenBusinessCenter, 201, (PermissionDenied, NotFound, AlreadyExists), tags=("business centers",)),
            Endpoint("GET", "/v1/business-centers/{business_center_id}", "Read a Business Center (any of its roles)", self.query(read_business_center), BusinessCenterAnswer, errors=forbidden, tags=("business centers",)),
            Endpoint("PUT", "/v1/business-centers/{business_center_id}/members/{user_id}", "Give a user a role in the Business Center (Admin; W9)", self.command("PUT", "/v1/business-centers/{business_center_id}/members/{user_id}", grant_role), Done, GrantRole, errors=forbidden, tags=("business centers",)),
            Endpoint("PUT", "/v1/business-centers/{business_center_id}/credit-line", "Set the credit line (platform operators)", self.command("PUT", "/v1/business-centers/{business_center_id}/credit-line", set_credit_line), BusinessCenterAnswer, SetCreditLine, errors=(*forbidden, InsufficientFunds), tags=("business centers",)),
            Endpoint("POST", "/v1/business-centers/{business_center_id}/vouchers", "Grant vouchers (platform operators; W6)", self.command("POST", "/v1/business-centers/{business_center_id}/vouchers", grant_vouchers), BalanceAnswer, GrantVouchers, errors=forbidden, tags=("business centers",)),
            Endpoint("POST", "/v1/business-centers/{business_center_id}/ad-accounts", "Open an ad account (Admin; W1)", self.command("POST", "/v1/business-centers/{business_center_id}/ad-accounts", open_ad_account), AdAccountAnswer, OpenAdAccount, 201, (*forbidden, AlreadyExists, InvalidValue), tags=("ad accounts",)),
            Endpoint("GET", "/v1/business-centers/{business_center_id}/ad-accounts", "List the Business Center's ad accounts", self.query(list_ad_accounts), AdAccountAnswer, errors=forbidden, returns_list=True, tags=("ad accounts",)),
            Endpoint("POST", "/v1/business-centers/{business_center_id}/aba", "Enable Automatic Balance Allocation, one-way (Admin; W2-W5)", self.command("POST", "/v1/business-centers/{business_center_id}/aba", enable_aba), AbaEnabledAnswer, None, errors=(*forbidden, AbaAlreadyEnabled, InsufficientFunds), tags=("allocation",)),
            Endpoint("DELETE", "/v1/business-centers/{business_center_id}/aba", "Switch back to manual allocation: rejected once ABA is on (W2)", self.command("DELETE", "/v1/business-centers/{business_center_id}/aba", disable_aba), Done, None, errors=(*forbidden, AbaIsOneWay), tags=("allocation",)),
            Endpoint("POST", "/v1/business-centers/{business_center_id}/allocations", "Allocate cash or vouchers by hand (Finance Manager or Admin; W6, W9)", self.command("POST", "/v1/business-centers/{business_center_id}/allocations", allocate), BalanceAnswer, Allocate, errors=(*forbidden, InsufficientFunds, CurrencyMismatch, NotEligible, InvalidValue), tags=("allocation",)),
            Endpoint("GET", "/v1/balances/{owner_id}", "Read a Business Center's or ad account's balance (W11)", self.query(read_balance), BalanceAnswer, errors=forbidden, tags=("balances",)),
            Endpoint("GET", "/v1/balances/{owner_id}/history", "Real and virtual balances at each UTC day close, from and to inclusive (W13)", self.query(read_history), DailyBalanceAnswer, errors=(*forbidden, InvalidValue), returns_list=True, query=("from", "to"), tags=("balances",)),
        ]


async def _business_center_answer(uow: UnitOfWork, business_center_id: str) -> BusinessCenterAnswer:
    business_center = await store.load_business_center(uow.conn, business_center_id)
    return BusinessCenterAnswer(
        id=business_center.id,
        name=await store.business_center_name(uow.conn, business_center_id),
        currency=business_center.currency,
        aba_enabled=business_center.aba_enabled,
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
        budget=BudgetBody(kind=budget.kind.value, amount_micros=budget.amount_micros, starts_on=budget.starts_on, ends_on=budget.ends_on) if budget else None,
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
        buckets=Buckets(cash=item.cash_micros + item.overspend_micros, credit_line=item.credit_line_micros, vouchers=item.vouchers_micros),
    )


