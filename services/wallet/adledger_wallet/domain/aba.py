"""Automatic Balance Allocation: eligibility, and the plan for switching it on (rules W2–W6).

`plan_enable_aba` decides everything and changes nothing: the adapter turns its `AbaPlan` into
linked ledger transfers (one per `CashMove`), the ad-account budget updates, the Business
Center update, and one event, all in one database transaction. Who may ask for it is checked
before, with `adledger_auth.roles.authorize(caller, business_center.id, Action.ENABLE_ABA, ...)` (Admin only).

Decisions the rules leave open:

- An ad account whose currency differs from the Business Center's is ineligible (reason
  `currency_differs`) and keeps manual allocation. Drawing on a balance of another currency
  would mix currencies (M2); refusing the whole switch because of one such account would make
  ABA impossible for that Business Center forever, so that account is left out instead.
- Every reason an account is ineligible is listed, not only the first, so a user can see
  everything that would have to change.
- "Available balance" in Budget Sync (W5) is the account's available cash, the same figure
  W4 moves: seed 001's example transfers the $100 balance and sets a $100 budget, and vouchers
  never move (W6) and stay spendable by the account first (W7).
- The budget Budget Sync sets is a monthly budget: seed 001 calls the cap Finance edits under
  ABA "the monthly budget of each account".
- Budget Sync is a system change, not a user's; it does not count towards the 10 cap changes
  per UTC day (W10).
- An account with zero available cash moves nothing (no zero transfer is made) and, if its
  budget is synced, gets a budget of zero: it could spend nothing from its balance before,
  and Budget Sync exists to keep it that way until Finance raises the budget.
- An account whose cash is negative (overspend, S2) still ends at exactly 0 as W4 says: the
  Business Center cash settles the debt with a move in the other direction. After the switch
  money comes in only through the Business Center, so a debt left on the ad account would never
  be covered by "the next money in" (S2). Its synced budget is zero, as for an empty account.
- Ad accounts listed that are not eligible are reported and untouched; accounts not listed at
  all are not considered (the caller lists every account the Business Center owns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from adledger_wallet.domain.errors import (
    AbaAlreadyEnabledError,
    AbaIsOneWayError,
    DuplicateAdAccountError,
    MissingCashBalanceError,
)
from adledger_wallet.domain.model import (
    AdAccount,
    AdAccountType,
    BillingOption,
    Budget,
    BusinessCenter,
    require_micros,
)


class IneligibilityReason(StrEnum):
    """Why an ad account keeps manual allocation (W3, and M2 for the currency)."""

    NOT_OWNED_BY_BUSINESS_CENTER = "not_owned_by_business_center"
    NOT_AUCTION = "not_auction"
    NOT_MONTHLY_INVOICING = "not_monthly_invoicing"
    CURRENCY_DIFFERS = "currency_differs"


class CashMoveDirection(StrEnum):
    AD_ACCOUNT_TO_BUSINESS_CENTER = "ad_account_to_business_center"
    BUSINESS_CENTER_TO_AD_ACCOUNT = "business_center_to_ad_account"


@dataclass(frozen=True, slots=True)
class IneligibleAdAccount:
    ad_account_id: str
    reasons: tuple[IneligibilityReason, ...]


@dataclass(frozen=True, slots=True)
class CashMove:
    """One transfer between an ad account's cash and its Business Center's cash (W4)."""

    ad_account_id: str
    direction: CashMoveDirection
    #: Always strictly positive; the direction says which way the money goes.
    amount_micros: int
    currency: str


@dataclass(frozen=True, slots=True)
class BudgetSync:
    """What Budget Sync (W5) did to one eligible ad account's budget."""

    ad_account_id: str
    budget_before: Budget | None
    budget_after: Budget | None
    #: True when the budget was replaced; False when the account's set budget was kept.
    synced: bool


@dataclass(frozen=True, slots=True)
class AbaPlan:
    """Everything that enabling ABA changes, as data (W2–W6)."""

    #: The Business Center as it will be: `aba_enabled` is true.
    business_center: BusinessCenter
    eligible_ad_account_ids: tuple[str, ...]
    ineligible_ad_accounts: tuple[IneligibleAdAccount, ...]
    cash_moves: tuple[CashMove, ...]
    budget_syncs: tuple[BudgetSync, ...]
    #: The eligible ad accounts as they will be (with their synced budgets), in the order given.
    ad_accounts_after: tuple[AdAccount, ...]

    @property
    def net_cash_to_business_center_micros(self) -> int:
        """The net growth of the Business Center's cash bucket; vouchers never move (W6)."""
        total_micros = 0
        for move in self.cash_moves:
            if move.direction is CashMoveDirection.AD_ACCOUNT_TO_BUSINESS_CENTER:
                total_micros += move.amount_micros
            else:
                total_micros -= move.amount_micros
        return total_micros


def aba_ineligibility_reasons(
    business_center: BusinessCenter, ad_account: AdAccount
) -> tuple[IneligibilityReason, ...]:
    """Why `ad_account` cannot use this Business Center's ABA; empty when it can (W3)."""
    reasons: list[IneligibilityReason] = []
    if ad_account.business_center_id != business_center.id:
        reasons.append(IneligibilityReason.NOT_OWNED_BY_BUSINESS_CENTER)
    if ad_account.type is not AdAccountType.AUCTION:
        reasons.append(IneligibilityReason.NOT_AUCTION)
    if ad_account.billing_option is not BillingOption.MONTHLY_INVOICING:
        reasons.append(IneligibilityReason.NOT_MONTHLY_INVOICING)
    if ad_account.currency != business_center.currency:
        reasons.append(IneligibilityReason.CURRENCY_DIFFERS)
    return tuple(reasons)


def is_aba_eligible(business_center: BusinessCenter, ad_account: AdAccount) -> bool:
    return not aba_ineligibility_reasons(business_center, ad_account)


def draws_on_business_center(business_center: BusinessCenter, ad_account: AdAccount) -> bool:
    """True when the account's spend falls through to the Business Center (W7's `aba` flag)."""
    return business_center.aba_enabled and is_aba_eligible(business_center, ad_account)


def check_switch_to_manual_allocation(business_center: BusinessCenter) -> None:
    """Reject a switch back to manual allocation once ABA is on (W2).

    A Business Center that never enabled ABA already allocates by hand, so the request changes
    nothing and is accepted.
    """
    if business_center.aba_enabled:
        raise AbaIsOneWayError(business_center.id)


def plan_enable_aba(
    business_center: BusinessCenter,
    ad_accounts: Iterable[AdAccount],
    cash_available_by_account: Mapping[str, int],
) -> AbaPlan:
    """Plan switching `business_center` to Automatic Balance Allocation (W2–W6).

    `cash_available_by_account` maps an ad account id to its available cash in micros, read from
    the ledger in the same database transaction that will apply the plan; it must hold every
    eligible account, and figures for other accounts are ignored.
    """
    if business_center.aba_enabled:
        raise AbaAlreadyEnabledError(business_center.id)

    seen_ids: set[str] = set()
    eligible_ids: list[str] = []
    ineligible: list[IneligibleAdAccount] = []
    cash_moves: list[CashMove] = []
    budget_syncs: list[BudgetSync] = []
    accounts_after: list[AdAccount] = []

    for ad_account in ad_accounts:
        if ad_account.id in seen_ids:
            raise DuplicateAdAccountError(ad_account.id)
        seen_ids.add(ad_account.id)

        reasons = aba_ineligibility_reasons(business_center, ad_account)
        if reasons:
            ineligible.append(IneligibleAdAccount(ad_account.id, reasons))
            continue

        if ad_account.id not in cash_available_by_account:
            raise MissingCashBalanceError(ad_account.id)
        cash_micros = require_micros(cash_available_by_account[ad_account.id])
        eligible_ids.append(ad_account.id)

        # W4: the account ends at exactly zero cash, whichever way the money has to go.
        if cash_micros > 0:
            cash_moves.append(
                CashMove(
                    ad_account.id, CashMoveDirection.AD_ACCOUNT_TO_BUSINESS_CENTER, cash_micros, ad_account.currency
                )
            )
        elif cash_micros < 0:
            cash_moves.append(
                CashMove(
                    ad_account.id, CashMoveDirection.BUSINESS_CENTER_TO_AD_ACCOUNT, -cash_micros, ad_account.currency
                )
            )

        # W5: no budget or an unlimited one becomes the balance the account could spend just before.
        budget_before = ad_account.budget
        if budget_before is not None and budget_before.is_limited:
            budget_syncs.append(BudgetSync(ad_account.id, budget_before, budget_before, synced=False))
            accounts_after.append(ad_account)
        else:
            budget_after = Budget.monthly(max(cash_micros, 0))
            budget_syncs.append(BudgetSync(ad_account.id, budget_before, budget_after, synced=True))
            accounts_after.append(replace(ad_account, budget=budget_after))

    return AbaPlan(
        business_center=replace(business_center, aba_enabled=True),
        eligible_ad_account_ids=tuple(eligible_ids),
        ineligible_ad_accounts=tuple(ineligible),
        cash_moves=tuple(cash_moves),
        budget_syncs=tuple(budget_syncs),
        ad_accounts_after=tuple(accounts_after),
    )
