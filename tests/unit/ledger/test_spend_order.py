"""The W7 spend order, overspend (S2) and the funds that decide a pause (W8)."""


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adledger_ledger.spend_order import (
    BucketBalances,
    InvalidSpendAmountError,
    SpendPlan,
    funds_available,
    funds_exhausted,
    plan_spend,
    plan_spend_batch,
)

# The functions under test are pure and fast; a per-example deadline would only fail on a busy machine.
no_deadline = settings(deadline=None)
bucket_micros = st.integers(min_value=-(10**12), max_value=10**12)
amount_micros = st.integers(min_value=0, max_value=3 * 10**12)
balances_strategy = st.builds(BucketBalances, bucket_micros, bucket_micros, bucket_micros, bucket_micros, bucket_micros)


def plan(amount: int, *, aba: bool, balances: BucketBalances) -> SpendPlan:
    return plan_spend(
        amount,
        aba=aba,
        account_vouchers_micros=balances.account_vouchers_micros,
        account_cash_micros=balances.account_cash_micros,
        business_center_vouchers_micros=balances.business_center_vouchers_micros,
        business_center_cash_micros=balances.business_center_cash_micros,
        business_center_credit_available_micros=balances.business_center_credit_available_micros,
    )


def available(*, aba: bool, balances: BucketBalances) -> int:
    return funds_available(
        aba=aba,
        account_vouchers_micros=balances.account_vouchers_micros,
        account_cash_micros=balances.account_cash_micros,
        business_center_vouchers_micros=balances.business_center_vouchers_micros,
        business_center_cash_micros=balances.business_center_cash_micros,
        business_center_credit_available_micros=balances.business_center_credit_available_micros,
    )


def test_w7_aba_account_spends_its_vouchers_then_its_cash_then_bc_vouchers_cash_and_credit_line() -> None:
    balances = BucketBalances(10, 20, 30, 40, 50)
    assert plan(5, aba=True, balances=balances) == SpendPlan(5, 0, 0, 0, 0, 0)
    assert plan(25, aba=True, balances=balances) == SpendPlan(10, 15, 0, 0, 0, 0)
    assert plan(55, aba=True, balances=balances) == SpendPlan(10, 20, 25, 0, 0, 0)
    assert plan(95, aba=True, balances=balances) == SpendPlan(10, 20, 30, 35, 0, 0)
    assert plan(150, aba=True, balances=balances) == SpendPlan(10, 20, 30, 40, 50, 0)


def test_w7_manual_account_spends_its_vouchers_then_its_cash_and_never_the_bc() -> None:
    balances = BucketBalances(10, 20, 30, 40, 50)
    assert plan(25, aba=False, balances=balances) == SpendPlan(10, 15, 0, 0, 0, 0)
    assert plan(31, aba=False, balances=balances) == SpendPlan(10, 20, 0, 0, 0, 1)
    assert available(aba=False, balances=balances) == 30


def test_s2_served_spend_beyond_every_bucket_is_recorded_as_overspend_not_refused() -> None:
    spend = plan(200, aba=True, balances=BucketBalances(10, 20, 30, 40, 50))
    assert spend == SpendPlan(10, 20, 30, 40, 50, 50)
    assert spend.taken_micros + spend.overspend_micros == 200


def test_s2_a_negative_bucket_gives_nothing_and_is_not_netted() -> None:
    assert plan(10, aba=False, balances=BucketBalances(4, -100, 0, 0, 0)) == SpendPlan(4, 0, 0, 0, 0, 6)
    assert available(aba=False, balances=BucketBalances(4, -100, 0, 0, 0)) == 4


def test_s2_overspend_lands_on_the_last_cash_bucket_of_the_order() -> None:
    manual = plan_spend_batch([15], aba=False, balances=BucketBalances(5, 5, 100, 100, 100))
    assert manual.balances_after == BucketBalances(0, -5, 100, 100, 100)
    aba = plan_spend_batch([15], aba=True, balances=BucketBalances(5, 5, 0, 0, 0))
    assert aba.balances_after == BucketBalances(0, 0, 0, -5, 0)


def test_w8_bc_at_zero_pauses_every_aba_account() -> None:
    center_empty = (0, 0, 0)
    for account_buckets in [(0, 0), (0, -3)]:
        balances = BucketBalances(*account_buckets, *center_empty)
        assert funds_exhausted(available(aba=True, balances=balances))
    # W8: an ABA account can draw on the Business Center total, so any bucket of it keeps delivery going.
    for center in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]:
        assert not funds_exhausted(available(aba=True, balances=BucketBalances(0, 0, *center)))


def test_w8_funds_available_for_aba_are_the_accounts_own_plus_the_bc_total() -> None:
    assert available(aba=True, balances=BucketBalances(1, 2, 3, 4, 5)) == 15
    assert available(aba=False, balances=BucketBalances(1, 2, 3, 4, 5)) == 3


@pytest.mark.parametrize("amount", [-1, 1.5, True, "5"])
def test_m1_a_spend_amount_is_a_non_negative_integer(amount: object) -> None:
    with pytest.raises(InvalidSpendAmountError):
        plan(amount, aba=True, balances=BucketBalances(1, 1, 1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidSpendAmountError):
        plan_spend_batch([1, amount], aba=True, balances=BucketBalances(1, 1, 1, 1, 1))  # type: ignore[list-item]


def test_w7_a_zero_amount_takes_nothing() -> None:
    assert plan(0, aba=True, balances=BucketBalances(1, 1, 1, 1, 1)) == SpendPlan(0, 0, 0, 0, 0, 0)


@no_deadline
@given(amount=amount_micros, aba=st.booleans(), balances=balances_strategy)
def test_w7_s2_takes_never_exceed_a_bucket_and_add_up_to_the_amount(
    amount: int, aba: bool, balances: BucketBalances
) -> None:
    spend = plan(amount, aba=aba, balances=balances)
    for take, bucket in zip(spend[:5], balances, strict=True):
        assert 0 <= take <= max(bucket, 0)
    assert spend.overspend_micros >= 0
    assert sum(spend) == amount
    assert spend.taken_micros + spend.overspend_micros == amount


@no_deadline
@given(amount=amount_micros, aba=st.booleans(), balances=balances_strategy)
def test_w7_order_is_respected(amount: int, aba: bool, balances: BucketBalances) -> None:
    spend = plan(amount, aba=aba, balances=balances)
    takes = list(spend[:5])
    drawable = [max(bucket, 0) for bucket in balances]
    # A bucket gives something only once every bucket before it has given all it had.
    for index, take in enumerate(takes):
        if take > 0:
            assert all(takes[earlier] == drawable[earlier] for earlier in range(index))
    # Overspend only once every bucket the account may draw on is empty.
    if spend.overspend_micros > 0:
        last_bucket = 5 if aba else 2
        assert takes[:last_bucket] == drawable[:last_bucket]


@no_deadline
@given(amount=amount_micros, balances=balances_strategy)
def test_w7_manual_accounts_never_touch_bc_buckets(amount: int, balances: BucketBalances) -> None:
    spend = plan(amount, aba=False, balances=balances)
    assert spend.business_center_vouchers_micros == 0
    assert spend.business_center_cash_micros == 0
    assert spend.business_center_credit_line_micros == 0
    # W7: what a manual account's own buckets cannot cover is overspend, however rich its Business Center is.
    assert spend.overspend_micros == max(0, amount - max(balances[0], 0) - max(balances[1], 0))


@no_deadline
@given(amount=amount_micros, aba=st.booleans(), balances=balances_strategy)
def test_w8_s2_overspend_happens_exactly_when_spend_exceeds_funds_available(
    amount: int, aba: bool, balances: BucketBalances
) -> None:
    funds = available(aba=aba, balances=balances)
    assert funds >= 0
    assert plan(amount, aba=aba, balances=balances).overspend_micros == max(0, amount - funds)


@no_deadline
@given(
    amounts=st.lists(st.integers(min_value=0, max_value=10**7), max_size=30),
    aba=st.booleans(),
    balances=balances_strategy,
)
def test_w7_batch_equals_one_spend_at_a_time(amounts: list[int], aba: bool, balances: BucketBalances) -> None:
    batch = plan_spend_batch(amounts, aba=aba, balances=balances)
    running = list(balances)
    funds_before = available(aba=aba, balances=balances)
    exhausted_at_index = 0 if amounts and funds_before <= 0 else None
    for index, amount in enumerate(amounts):
        spend = plan(amount, aba=aba, balances=BucketBalances(*running))
        assert batch.plans[index] == spend
        for bucket_index, take in enumerate(spend[:5]):
            running[bucket_index] -= take
        running[3 if aba else 1] -= spend.overspend_micros
        if exhausted_at_index is None and funds_exhausted(available(aba=aba, balances=BucketBalances(*running))):
            exhausted_at_index = index
    assert batch.balances_after == BucketBalances(*running)
    assert batch.funds_available_micros == available(aba=aba, balances=batch.balances_after)
    assert batch.overspend_micros == sum(spend.overspend_micros for spend in batch.plans)
    assert batch.funds_exhausted_at_index == exhausted_at_index


def test_w8_batch_names_the_event_that_took_the_funds_to_zero() -> None:
    batch = plan_spend_batch([3, 4, 3, 2, 5], aba=True, balances=BucketBalances(2, 2, 2, 2, 2))
    # 3 + 4 + 3 = 10 is exactly what the buckets hold: the third spend (index 2) crosses zero.
    assert batch.funds_exhausted_at_index == 2
    assert [spend.overspend_micros for spend in batch.plans] == [0, 0, 0, 2, 5]
    assert batch.overspend_micros == 7
    assert batch.funds_available_micros == 0
    assert batch.balances_after == BucketBalances(0, 0, 0, -7, 0)


def test_s2_batch_overspend_is_the_figure_for_the_pause() -> None:
    batch = plan_spend_batch([5, 5], aba=False, balances=BucketBalances(0, 7, 0, 0, 0))
    assert batch.funds_exhausted_at_index == 1
    assert batch.plans[1] == SpendPlan(0, 2, 0, 0, 0, 3)
    assert batch.overspend_micros == 3


def test_w8_batch_reports_no_exhaustion_while_funds_remain_and_zero_when_already_exhausted() -> None:
    assert plan_spend_batch([1, 1], aba=False, balances=BucketBalances(0, 3, 0, 0, 0)).funds_exhausted_at_index is None
    assert plan_spend_batch([1], aba=False, balances=BucketBalances(0, 0, 9, 9, 9)).funds_exhausted_at_index == 0
    assert plan_spend_batch([], aba=False, balances=BucketBalances(0, 0, 0, 0, 0)).funds_exhausted_at_index is None
