"""Small builders for the wallet domain tests: a Business Center, its ad accounts and its users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adledger_auth.roles import Role
from adledger_wallet.domain.model import AdAccount, AdAccountType, BillingOption, Budget, BusinessCenter

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


@dataclass(frozen=True)
class Member:
    """A principal (`adledger_auth.roles.Principal`) with roles per Business Center, as a verified caller has."""

    user_id: str
    roles: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    platform_operator: bool = False

    def roles_in(self, business_center_id: str) -> frozenset[Role]:
        return self.roles.get(business_center_id, frozenset())


def user(user_id: str, business_center_id: str = "bc-1", *roles: Role) -> Member:
    return Member(user_id, {business_center_id: frozenset(roles)})
