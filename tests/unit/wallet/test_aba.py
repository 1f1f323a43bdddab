"""Automatic Balance Allocation: one way, eligibility, cash moves, Budget Sync, vouchers (W2–W6)."""

from dataclasses import replace

import pytest

from adledger_wallet.domain.aba import (
    CashMove,
    CashMoveDirection,
    IneligibilityReason,
    check_switch_to_manual_allocation,
    draws_on_business_center,
    plan_enable_aba,
)
from adledger_wallet.domain.errors import (
    AbaAlreadyEnabledError,
    AbaIsOneWayError,
    DuplicateAdAccountError,
    InvalidAmountError,
    MissingCashBalanceError,
)
from adledger_wallet.domain.model import AdAccountType, BillingOption, Budget, BudgetKind
from tests.unit.wallet.factories import ad_account, business_center

UNITS = 1_000_000


def test_w2_enabling_aba_turns_the_setting_on() -> None:
    plan = plan_enable_aba(business_center(), [], {})
    assert plan.business_center.aba_enabled
    assert plan.business_center == replace(business_center(), aba_enabled=True)


def test_w2_aba_cannot_be_switched_back_to_manual() -> None:
    with pytest.raises(AbaIsOneWayError) as caught:
        check_switch_to_manual_allocation(business_center(aba_enabled=True))
    assert caught.value.business_center_id == "bc-1"


def test_w2_a_manual_business_center_asking_for_manual_changes_nothing() -> None:
    check_switch_to_manual_allocation(business_center(aba_enabled=False))


def test_w2_aba_cannot_be_enabled_twice() -> None:
    with pytest.raises(AbaAlreadyEnabledError) as caught:
        plan_enable_aba(business_center(aba_enabled=True), [ad_account("acc-1")], {"acc-1": 5})
    assert caught.value.business_center_id == "bc-1"


def test_w3_only_owned_auction_monthly_invoicing_accounts_are_eligible() -> None:
    accounts = [
        ad_account("eligible"),
        ad_account("other-bc", business_center_id="bc-2"),
        ad_account("reservation", account_type=AdAccountType.RESERVATION),
        ad_account("prepaid", billing_option=BillingOption.PREPAID),
        ad_account("euro", currency="EUR"),
    ]
    plan = plan_enable_aba(business_center(), accounts, {"eligible": 1, "other-bc": 1, "reservation": 1})
    assert plan.eligible_ad_account_ids == ("eligible",)
    reasons = {entry.ad_account_id: entry.reasons for entry in plan.ineligible_ad_accounts}
    assert reasons == {
        "other-bc": (IneligibilityReason.NOT_OWNED_BY_BUSINESS_CENTER,),
        "reservation": (IneligibilityReason.NOT_AUCTION,),
        "prepaid": (IneligibilityReason.NOT_MONTHLY_INVOICING,),
        "euro": (IneligibilityReason.CURRENCY_DIFFERS,),
    }
    # W3: ineligible accounts keep manual allocation: no cash moves and no budget change for them.
    assert [move.ad_account_id for move in plan.cash_moves] == ["eligible"]
    assert [sync.ad_account_id for sync in plan.budget_syncs] == ["eligible"]


def test_w3_every_reason_an_account_is_ineligible_is_listed() -> None:
    account = ad_account(
        "acc-1",
        business_center_id="bc-2",
        account_type=AdAccountType.RESERVATION,
        billing_option=BillingOption.PREPAID,
    )
    plan = plan_enable_aba(business_center(), [account], {})
    assert plan.ineligible_ad_accounts[0].reasons == (
        IneligibilityReason.NOT_OWNED_BY_BUSINESS_CENTER,
        IneligibilityReason.NOT_AUCTION,
        IneligibilityReason.NOT_MONTHLY_INVOICING,
    )


def test_w3_only_eligible_accounts_of_an_aba_business_center_draw_on_it() -> None:
    center = business_center(aba_enabled=True)
    assert draws_on_business_center(center, ad_account("acc-1"))
    assert not draws_on_business_center(center, ad_account("acc-2", billing_option=BillingOption.PREPAID))
    assert not draws_on_business_center(business_center(aba_enabled=False), ad_account("acc-1"))


def test_w4_each_eligible_accounts_available_cash_moves_to_the_business_center_leaving_zero() -> None:
    accounts = [ad_account("acc-1"), ad_account("acc-2"), ad_account("acc-3")]
    plan = plan_enable_aba(business_center(), accounts, {"acc-1": 100 * UNITS, "acc-2": 7, "acc-3": 0})
    to_center = CashMoveDirection.AD_ACCOUNT_TO_BUSINESS_CENTER
    # W4: a zero balance needs no transfer; every other account moves all of its available cash.
    assert plan.cash_moves == (CashMove("acc-1", to_center, 100 * UNITS, "USD"), CashMove("acc-2", to_center, 7, "USD"))
    assert plan.net_cash_to_business_center_micros == 100 * UNITS + 7


def test_w4_an_overspent_account_is_settled_by_the_business_center_so_it_also_ends_at_zero() -> None:
    plan = plan_enable_aba(business_center(), [ad_account("acc-1")], {"acc-1": -3 * UNITS})
    assert plan.cash_moves == (CashMove("acc-1", CashMoveDirection.BUSINESS_CENTER_TO_AD_ACCOUNT, 3 * UNITS, "USD"),)
    assert plan.net_cash_to_business_center_micros == -3 * UNITS
    assert plan.ad_accounts_after[0].budget == Budget.monthly(0)


def test_w4_cash_of_every_eligible_account_is_required() -> None:
    with pytest.raises(MissingCashBalanceError) as caught:
        plan_enable_aba(business_center(), [ad_account("acc-1")], {})
    assert caught.value.ad_account_id == "acc-1"


def test_w4_cash_figures_are_integer_micros() -> None:
    with pytest.raises(InvalidAmountError):
        plan_enable_aba(business_center(), [ad_account("acc-1")], {"acc-1": 1.5})  # type: ignore[dict-item]


def test_w4_an_account_listed_twice_is_rejected() -> None:
    with pytest.raises(DuplicateAdAccountError):
        plan_enable_aba(business_center(), [ad_account("acc-1"), ad_account("acc-1")], {"acc-1": 1})


@pytest.mark.parametrize("budget_before", [None, Budget.unlimited()])
def test_w5_budget_sync_sets_an_unset_or_unlimited_budget_to_the_balance_just_before(
    budget_before: Budget | None,
) -> None:
    plan = plan_enable_aba(business_center(), [ad_account("acc-1", budget=budget_before)], {"acc-1": 100 * UNITS})
    (sync,) = plan.budget_syncs
    assert sync.synced
    assert sync.budget_before == budget_before
    assert sync.budget_after == Budget.monthly(100 * UNITS)
    assert plan.ad_accounts_after[0].budget == Budget.monthly(100 * UNITS)
    assert plan.ad_accounts_after[0].budget.kind is BudgetKind.MONTHLY


@pytest.mark.parametrize("budget", [Budget.monthly(5 * UNITS), Budget.daily(0), Budget.monthly(500 * UNITS)])
def test_w5_an_account_with_a_set_budget_keeps_it(budget: Budget) -> None:
    account = ad_account("acc-1", budget=budget)
    plan = plan_enable_aba(business_center(), [account], {"acc-1": 100 * UNITS})
    (sync,) = plan.budget_syncs
    assert not sync.synced
    assert sync.budget_before == sync.budget_after == budget
    assert plan.ad_accounts_after == (account,)


def test_w5_an_empty_account_is_synced_to_a_zero_budget() -> None:
    plan = plan_enable_aba(business_center(), [ad_account("acc-1")], {"acc-1": 0})
    assert plan.ad_accounts_after[0].budget == Budget.monthly(0)


def test_w6_vouchers_never_move_when_aba_is_enabled() -> None:
    plan = plan_enable_aba(business_center(), [ad_account("acc-1"), ad_account("acc-2")], {"acc-1": 5, "acc-2": 6})
    # W6: the plan can only express cash moves; there is no voucher move at all.
    assert all(isinstance(move, CashMove) for move in plan.cash_moves)
    assert not hasattr(plan, "voucher_moves")


def test_w3_ineligible_accounts_need_no_cash_figure_and_their_figures_are_ignored() -> None:
    plan = plan_enable_aba(
        business_center(), [ad_account("acc-1", billing_option=BillingOption.PREPAID)], {"acc-1": 99, "unknown": 1}
    )
    assert plan.cash_moves == ()
    assert plan.net_cash_to_business_center_micros == 0
