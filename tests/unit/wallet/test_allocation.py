"""Manual allocation of cash and vouchers between a Business Center and its ad accounts (W6, W9, M1, M2)."""

import pytest

from adledger_libs.money import CurrencyMismatchError
from adledger_wallet.domain.allocation import Allocation, AllocationBucket, AllocationDirection, plan_allocation
from adledger_wallet.domain.errors import (
    AdAccountNotOwnedError,
    InsufficientFundsError,
    InvalidAmountError,
    ManualCashAllocationUnderAbaError,
)
from adledger_wallet.domain.model import AdAccount, BillingOption, BusinessCenter
from adledger_auth.roles import PermissionDeniedError, Role
from tests.unit.wallet.factories import Member, ad_account, business_center, user

TO_ACCOUNT = AllocationDirection.BUSINESS_CENTER_TO_AD_ACCOUNT
TO_CENTER = AllocationDirection.AD_ACCOUNT_TO_BUSINESS_CENTER
FINANCE_MANAGER = user("u-1", "bc-1", Role.FINANCE_MANAGER)


def allocate(
    *,
    member: Member = FINANCE_MANAGER,
    center: BusinessCenter | None = None,
    account: AdAccount | None = None,
    bucket: AllocationBucket = AllocationBucket.VOUCHERS,
    direction: AllocationDirection = TO_ACCOUNT,
    amount_micros: int = 10,
    currency: str = "USD",
    source_available_micros: int = 100,
) -> Allocation:
    return plan_allocation(
        member,
        center or business_center(),
        account or ad_account("acc-1"),
        bucket=bucket,
        direction=direction,
        amount_micros=amount_micros,
        currency=currency,
        source_available_micros=source_available_micros,
    )


def test_w6_finance_manager_allocates_vouchers_to_an_ad_account() -> None:
    allocation = allocate()
    assert allocation == Allocation("bc-1", "acc-1", AllocationBucket.VOUCHERS, TO_ACCOUNT, 10, "USD")
    assert (allocation.source_owner_id, allocation.destination_owner_id) == ("bc-1", "acc-1")


def test_w6_vouchers_are_allocated_by_hand_even_under_aba() -> None:
    allocation = allocate(center=business_center(aba_enabled=True))
    assert allocation.bucket is AllocationBucket.VOUCHERS


def test_w6_allocation_can_return_funds_to_the_business_center() -> None:
    allocation = allocate(bucket=AllocationBucket.CASH, direction=TO_CENTER)
    assert (allocation.source_owner_id, allocation.destination_owner_id) == ("acc-1", "bc-1")


def test_w6_cash_is_not_allocated_by_hand_to_an_account_that_draws_on_the_business_center() -> None:
    with pytest.raises(ManualCashAllocationUnderAbaError):
        allocate(center=business_center(aba_enabled=True), bucket=AllocationBucket.CASH)
    # W3: an ineligible account of the same Business Center keeps manual allocation, cash included.
    manual_account = ad_account("acc-2", billing_option=BillingOption.PREPAID)
    allocate(center=business_center(aba_enabled=True), account=manual_account, bucket=AllocationBucket.CASH)


def test_w6_an_allocation_cannot_take_more_than_is_available() -> None:
    allocate(amount_micros=100, source_available_micros=100)
    with pytest.raises(InsufficientFundsError) as caught:
        allocate(amount_micros=101, source_available_micros=100)
    error = caught.value
    assert (error.owner_id, error.bucket, error.requested_micros, error.available_micros) == (
        "bc-1",
        "vouchers",
        101,
        100,
    )


def test_w6_an_overspent_source_has_nothing_available() -> None:
    with pytest.raises(InsufficientFundsError) as caught:
        allocate(direction=TO_CENTER, bucket=AllocationBucket.CASH, amount_micros=1, source_available_micros=-5)
    assert (caught.value.owner_id, caught.value.available_micros) == ("acc-1", 0)


@pytest.mark.parametrize("amount_micros", [0, -1, 1.0, True])
def test_m1_an_allocation_is_a_strictly_positive_integer_of_micros(amount_micros: int) -> None:
    with pytest.raises(InvalidAmountError):
        allocate(amount_micros=amount_micros)


def test_m2_an_allocation_in_another_currency_is_rejected() -> None:
    with pytest.raises(CurrencyMismatchError):
        allocate(currency="EUR")
    with pytest.raises(CurrencyMismatchError):
        allocate(account=ad_account("acc-1", currency="EUR"), currency="USD")


def test_w9_allocation_needs_an_account_of_the_same_business_center() -> None:
    with pytest.raises(AdAccountNotOwnedError) as caught:
        allocate(account=ad_account("acc-9", business_center_id="bc-2"))
    assert (caught.value.ad_account_id, caught.value.business_center_id) == ("acc-9", "bc-1")
    # W9: the error does not tell a user of bc-1 which Business Center owns the account.
    assert "bc-2" not in str(caught.value)


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ANALYST])
def test_w9_operator_and_analyst_cannot_allocate_funds(role: Role) -> None:
    with pytest.raises(PermissionDeniedError):
        allocate(member=user("u-2", "bc-1", role))


def test_w9_permission_is_checked_before_anything_about_the_accounts_is_revealed() -> None:
    outsider = user("u-3", "bc-2", Role.ADMIN)
    with pytest.raises(PermissionDeniedError):
        allocate(member=outsider, account=ad_account("acc-9", business_center_id="bc-2"), amount_micros=10**12)


def test_w9_without_finance_roles_only_an_admin_allocates() -> None:
    center = business_center(finance_roles_enabled=False)
    with pytest.raises(PermissionDeniedError):
        allocate(center=center)
    allocate(center=center, member=user("u-4", "bc-1", Role.ADMIN))
