"""Manual allocation of cash or vouchers between a Business Center and one of its ad accounts (W6, W9).

`plan_allocation` checks a request and returns an `Allocation`, which the adapter turns into one
ledger transfer between the two buckets. The checks run in this order, so that a user who may
not allocate learns nothing about the accounts or the balances: permission (W9), ownership
(W1), currency (M2), amount (M1), the ABA rule below, and last the funds.

Decisions the rules leave open:

- Only cash and vouchers can be allocated: the credit line belongs to the Business Center and
  an ad account has no credit-line bucket (W1).
- Allocation works both ways: from the Business Center to the ad account, and back.
- Under ABA, cash is not allocated by hand from the Business Center to an account that draws on
  it automatically (`ManualCashAllocationUnderAbaError`): the account spends the Business Center
  cash directly, so a manual move would only shift money to where it is spent the same way.
  Returning cash from such an account to the Business Center is allowed. Vouchers are always
  allocated by hand (W6), with or without ABA.
- "Available" is the source bucket's balance less its open holds, as the ledger reports it;
  an allocation may take all of it, never more (`InsufficientFundsError`). A source that is
  negative after overspend (S2) has nothing available.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adledger_libs.money import require_same_currency
from adledger_wallet.domain.aba import draws_on_business_center
from adledger_wallet.domain.errors import (
    AdAccountNotOwnedError,
    InsufficientFundsError,
    ManualCashAllocationUnderAbaError,
)
from adledger_wallet.domain.model import AdAccount, BusinessCenter, require_micros, require_positive_micros
from adledger_auth.roles import Action, Principal, authorize


class AllocationBucket(StrEnum):
    """The buckets that can be allocated by hand; both the Business Center and an ad account have them."""

    CASH = "cash"
    VOUCHERS = "vouchers"


class AllocationDirection(StrEnum):
    BUSINESS_CENTER_TO_AD_ACCOUNT = "business_center_to_ad_account"
    AD_ACCOUNT_TO_BUSINESS_CENTER = "ad_account_to_business_center"


@dataclass(frozen=True, slots=True)
class Allocation:
    """A checked allocation: one transfer from a bucket of one owner to the same bucket of the other."""

    business_center_id: str
    ad_account_id: str
    bucket: AllocationBucket
    direction: AllocationDirection
    amount_micros: int
    currency: str

    @property
    def source_owner_id(self) -> str:
        if self.direction is AllocationDirection.BUSINESS_CENTER_TO_AD_ACCOUNT:
            return self.business_center_id
        return self.ad_account_id

    @property
    def destination_owner_id(self) -> str:
        if self.direction is AllocationDirection.BUSINESS_CENTER_TO_AD_ACCOUNT:
            return self.ad_account_id
        return self.business_center_id


def plan_allocation(
    principal: Principal,
    business_center: BusinessCenter,
    ad_account: AdAccount,
    *,
    bucket: AllocationBucket,
    direction: AllocationDirection,
    amount_micros: int,
    currency: str,
    source_available_micros: int,
) -> Allocation:
    """Check a manual allocation and return it (W6, W9).

    `source_available_micros` is what the source bucket (the Business Center's when allocating to
    the account, the account's when returning) has available now, read in the same database
    transaction that will apply the allocation.
    """
    authorize(principal, business_center.id, Action.ALLOCATE_FUNDS, finance_roles_set_up=business_center.finance_roles_enabled)
    if ad_account.business_center_id != business_center.id:
        raise AdAccountNotOwnedError(ad_account.id, business_center.id)
    require_same_currency(business_center.currency, currency)
    require_same_currency(business_center.currency, ad_account.currency)
    require_positive_micros(amount_micros)
    require_micros(source_available_micros)
    if (
        bucket is AllocationBucket.CASH
        and direction is AllocationDirection.BUSINESS_CENTER_TO_AD_ACCOUNT
        and draws_on_business_center(business_center, ad_account)
    ):
        raise ManualCashAllocationUnderAbaError(ad_account.id, business_center.id)

    allocation = Allocation(business_center.id, ad_account.id, bucket, direction, amount_micros, currency)
    if amount_micros > source_available_micros:
        raise InsufficientFundsError(allocation.source_owner_id, bucket, amount_micros, max(source_available_micros, 0))
    return allocation
