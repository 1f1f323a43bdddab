"""Business Centers, ad accounts and budgets are well-formed values (W1, W10, M1, M2)."""

from datetime import date

import pytest

from adledger_wallet.domain.errors import InvalidAmountError, InvalidBudgetError
from adledger_wallet.domain.model import AdAccountBucket, Budget, BudgetKind, BusinessCenter, BusinessCenterBucket
from tests.unit.wallet.factories import ad_account


def test_w1_business_center_has_cash_credit_line_and_vouchers_and_an_ad_account_has_cash_and_vouchers() -> None:
    assert {bucket.value for bucket in BusinessCenterBucket} == {"cash", "credit_line", "vouchers"}
    assert {bucket.value for bucket in AdAccountBucket} == {"cash", "vouchers"}


def test_w1_an_ad_account_names_the_business_center_that_owns_it() -> None:
    assert ad_account("acc-1", business_center_id="bc-7").business_center_id == "bc-7"


def test_w10_budget_kinds_are_monthly_daily_custom_and_unlimited() -> None:
    assert Budget.monthly(5).kind is BudgetKind.MONTHLY
    assert Budget.daily(5).kind is BudgetKind.DAILY
    custom = Budget.custom(5, starts_on=date(2026, 3, 1), ends_on=date(2026, 3, 31))
    assert (custom.kind, custom.starts_on, custom.ends_on) == (BudgetKind.CUSTOM, date(2026, 3, 1), date(2026, 3, 31))
    assert Budget.unlimited().amount_micros is None
    assert not Budget.unlimited().is_limited
    assert Budget.monthly(0).is_limited


@pytest.mark.parametrize(
    "build",
    [
        lambda: Budget(BudgetKind.UNLIMITED, 5),
        lambda: Budget(BudgetKind.MONTHLY, None),
        lambda: Budget.monthly(-1),
        lambda: Budget.custom(5, starts_on=date(2026, 3, 2), ends_on=date(2026, 3, 1)),
        lambda: Budget(BudgetKind.CUSTOM, 5),
        lambda: Budget(BudgetKind.DAILY, 5, date(2026, 3, 1), date(2026, 3, 2)),
    ],
)
def test_w10_malformed_budgets_are_rejected(build: object) -> None:
    with pytest.raises(InvalidBudgetError):
        build()  # type: ignore[operator]


def test_m1_money_fields_refuse_floats_and_booleans() -> None:
    with pytest.raises(InvalidBudgetError):
        Budget.monthly(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidBudgetError):
        Budget.daily(True)
    with pytest.raises(InvalidAmountError):
        BusinessCenter(id="bc-1", currency="USD", credit_limit_micros=10.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmountError):
        BusinessCenter(id="bc-1", currency="USD", last_payment_micros=-1)


def test_m2_currency_is_an_iso_4217_code() -> None:
    with pytest.raises(ValueError, match="ISO-4217"):
        BusinessCenter(id="bc-1", currency="usd")
    with pytest.raises(ValueError, match="ISO-4217"):
        ad_account("acc-1", currency="DOLLAR")
