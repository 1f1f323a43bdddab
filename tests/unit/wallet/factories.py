"""Small builders for the wallet domain tests: a Business Center, its ad accounts and its users."""

from __future__ import annotations

from adledger_wallet.domain.model import AdAccount, AdAccountType, BillingOption, Budget, BusinessCenter
from adledger_wallet.domain.roles import Role, User

USD = "USD"


def business_center(
    business_center_id: str = "bc-1", *, aba_enabled: bool = False, finance_roles_enabled: bool = True
) -> BusinessCenter:
    return BusinessCenter(
        id=business_center_id, currency=USD, aba_enabled=aba_enabled, finance_roles_enabled=finance_roles_enabled
    )


def ad_account(
    ad_account_id: str,
    *,
    business_center_id: str = "bc-1",
    account_type: AdAccountType = AdAccountType.AUCTION,
    billing_option: BillingOption = BillingOption.MONTHLY_INVOICING,
    currency: str = USD,
    budget: Budget | None = None,
) -> AdAccount:
    return AdAccount(
        id=ad_account_id,
        business_center_id=business_center_id,
        type=account_type,
        billing_option=billing_option,
        currency=currency,
        budget=budget,
    )


def user(user_id: str, business_center_id: str = "bc-1", *roles: Role) -> User:
    return User(user_id, {business_center_id: frozenset(roles)})
