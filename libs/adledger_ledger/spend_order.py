"""The order in which spend is taken from balance buckets (rules W7, W8, S2).

This module lives in the shared ledger package, not in the wallet, because the spend consumer
(a separate service, which never imports the wallet) runs it for every spend event, and the
wallet runs it too. It is pure: integers in, integers out, no I/O.

W7 order for an ad account under Automatic Balance Allocation (ABA):
the account's vouchers, then the account's cash, then the Business Center's vouchers, cash,
and credit line. For a manual ad account: its vouchers, then its cash; never the Business
Center. What no bucket can cover is overspend (S2): the spend was already served and cannot be
refused, so it is recorded, not rejected.

Decisions the rules leave open:

- A bucket can only give what it has above zero. A negative bucket (the debt left by an
  earlier overspend) gives nothing and is not netted against the other buckets; it is repaid by
  the next money into that bucket (S2), which lands on it first.
- Overspend is charged to the last cash bucket in the account's order: the ad account's cash
  for a manual account, the Business Center's cash under ABA. That is where the next payment
  arrives, so the next money in covers the overspend first (S2). The credit line is never
  drawn beyond what is available on it.
- `funds_available` is exactly what `plan_spend` could take before recording overspend: the
  sum of the positive parts of the buckets in the account's order (W8: under ABA that is the
  account's own buckets plus the Business Center total). So "funds reached zero" (pause) and
  "the next spend is overspend" are the same test and can never disagree.
- A zero amount is accepted and takes nothing (an S6 final cost equal to the first charge).
  A negative amount (money coming back) is not spend and is rejected.

Speed: `plan_spend` runs once per spend event (around 100,000 a second), so it uses plain
integers, no loops and no objects beyond the result tuple; the parameters are keyword-only so a
call cannot swap two buckets by position.

Under ABA the Business Center buckets are shared by all its ABA ad accounts; whoever calls
this must serialise the events of those accounts on the Business Center's balances (one
running balance per Business Center), or two accounts could both take the same last micros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class InvalidSpendAmountError(ValueError):
    """A spend amount is not a non-negative integer of micros (rule M1)."""

    def __init__(self, amount_micros: object) -> None:
        super().__init__(f"a spend amount is a non-negative integer of micros (rule M1), not {amount_micros!r}")
        self.amount_micros = amount_micros


class SpendPlan(NamedTuple):
    """How much of one spend each bucket gives, in W7 order; the parts add up to the amount."""

    account_vouchers_micros: int
    account_cash_micros: int
    business_center_vouchers_micros: int
    business_center_cash_micros: int
    business_center_credit_line_micros: int
    #: What no bucket could cover (S2); charged to the last cash bucket in the order.
    overspend_micros: int

    @property
    def taken_micros(self) -> int:
        """The part of the spend the buckets covered (the amount less the overspend)."""
        return (
            self.account_vouchers_micros
            + self.account_cash_micros
            + self.business_center_vouchers_micros
            + self.business_center_cash_micros
            + self.business_center_credit_line_micros
        )


class BucketBalances(NamedTuple):
    """The balances an ad account can draw on, in W7 order; the Business Center ones count only under ABA."""

    account_vouchers_micros: int
    account_cash_micros: int
    business_center_vouchers_micros: int
    business_center_cash_micros: int
    #: The unused part of the credit line (the limit less what is drawn).
    business_center_credit_available_micros: int


class SpendBatch(NamedTuple):
    """The result of applying a sequence of spends in order (`plan_spend_batch`)."""

    #: One plan per amount, in the order given.
    plans: list[SpendPlan]
    #: The bucket balances after every spend, overspend included (charged as `SpendPlan` says).
    balances_after: BucketBalances
    #: `funds_available` after the batch; zero once the account should be paused (W8).
    funds_available_micros: int
    #: The sum of the plans' overspend (S2).
    overspend_micros: int
    #: The index of the first spend after which the funds available are zero, which is the spend
    #: to name as the cause of the pause (W8); `None` if funds stay above zero. It is 0 when the
    #: funds were already zero before the batch (the caller knows the account was paused then).
    funds_exhausted_at_index: int | None


# `SpendPlan(...)` goes through a generated Python `__new__`; building the tuple directly gives
# the same object in less than half the time, which matters at one plan per spend event.
_new_tuple = tuple.__new__


def plan_spend(
    amount_micros: int,
    *,
    aba: bool,
    account_vouchers_micros: int,
    account_cash_micros: int,
    business_center_vouchers_micros: int,
    business_center_cash_micros: int,
    business_center_credit_available_micros: int,
) -> SpendPlan:
    """Split one spend over the buckets in W7 order; what they cannot cover is overspend (S2).

    With `aba` false the Business Center figures are ignored: a manual account never draws on them.
    """
    if type(amount_micros) is not int or amount_micros < 0:
        raise InvalidSpendAmountError(amount_micros)
    remaining_micros = amount_micros

    # Each take is min(remaining, bucket), and nothing from a bucket that is zero or negative.
    account_vouchers_take = account_vouchers_micros if account_vouchers_micros < remaining_micros else remaining_micros
    if account_vouchers_take < 0:
        account_vouchers_take = 0
    remaining_micros -= account_vouchers_take

    account_cash_take = account_cash_micros if account_cash_micros < remaining_micros else remaining_micros
    if account_cash_take < 0:
        account_cash_take = 0
    remaining_micros -= account_cash_take

    if not aba or remaining_micros == 0:
        return _new_tuple(SpendPlan, (account_vouchers_take, account_cash_take, 0, 0, 0, remaining_micros))

    vouchers_take = (
        business_center_vouchers_micros if business_center_vouchers_micros < remaining_micros else remaining_micros
    )
    if vouchers_take < 0:
        vouchers_take = 0
    remaining_micros -= vouchers_take

    cash_take = business_center_cash_micros if business_center_cash_micros < remaining_micros else remaining_micros
    if cash_take < 0:
        cash_take = 0
    remaining_micros -= cash_take

    credit_take = (
        business_center_credit_available_micros
        if business_center_credit_available_micros < remaining_micros
        else remaining_micros
    )
    if credit_take < 0:
        credit_take = 0
    remaining_micros -= credit_take

    return _new_tuple(
        SpendPlan, (account_vouchers_take, account_cash_take, vouchers_take, cash_take, credit_take, remaining_micros)
    )


def funds_available(
    *,
    aba: bool,
    account_vouchers_micros: int,
    account_cash_micros: int,
    business_center_vouchers_micros: int,
    business_center_cash_micros: int,
    business_center_credit_available_micros: int,
) -> int:
    """What the ad account can still draw on before spend becomes overspend (W8); never negative.

    Under ABA this is the account's own vouchers and cash plus the Business Center total, so a
    Business Center at zero leaves every ABA account it has with nothing beyond its own buckets.
    """
    total_micros = (account_vouchers_micros if account_vouchers_micros > 0 else 0) + (
        account_cash_micros if account_cash_micros > 0 else 0
    )
    if aba:
        total_micros += (
            (business_center_vouchers_micros if business_center_vouchers_micros > 0 else 0)
            + (business_center_cash_micros if business_center_cash_micros > 0 else 0)
            + (business_center_credit_available_micros if business_center_credit_available_micros > 0 else 0)
        )
    return total_micros


def funds_exhausted(funds_available_micros: int) -> bool:
    """W8: delivery pauses when the funds an account can draw on reach zero (or below)."""
    return funds_available_micros <= 0


def plan_spend_batch(amounts_micros: Sequence[int], *, aba: bool, balances: BucketBalances) -> SpendBatch:
    """Apply spends in order against running balances; name the spend that exhausted the funds (W7, W8, S2).

    It calls `plan_spend` once per amount and subtracts each plan from the balances. Funds only go down inside a batch (it holds no
    money in), so once exhausted they stay exhausted and every later spend is overspend.
    """
    account_vouchers, account_cash, center_vouchers, center_cash, center_credit = balances
    funds_micros = funds_available(
        aba=aba,
        account_vouchers_micros=account_vouchers,
        account_cash_micros=account_cash,
        business_center_vouchers_micros=center_vouchers,
        business_center_cash_micros=center_cash,
        business_center_credit_available_micros=center_credit,
    )
    plans: list[SpendPlan] = []
    total_overspend_micros = 0
    exhausted_at_index: int | None = 0 if funds_micros <= 0 and amounts_micros else None

    for index, amount_micros in enumerate(amounts_micros):
        # One place holds the W7 order: the batch only carries the running balances along.
        plan = plan_spend(
            amount_micros,
            aba=aba,
            account_vouchers_micros=account_vouchers,
            account_cash_micros=account_cash,
            business_center_vouchers_micros=center_vouchers,
            business_center_cash_micros=center_cash,
            business_center_credit_available_micros=center_credit,
        )
        account_vouchers -= plan[0]
        account_cash -= plan[1]
        center_vouchers -= plan[2]
        center_cash -= plan[3]
        center_credit -= plan[4]
        overspend_micros = plan[5]
        # Overspend lands on the last cash bucket in the order, where the next payment arrives (S2).
        if overspend_micros:
            if aba:
                center_cash -= overspend_micros
            else:
                account_cash -= overspend_micros
            total_overspend_micros += overspend_micros
        plans.append(plan)
        funds_micros -= amount_micros - overspend_micros
        if exhausted_at_index is None and funds_micros <= 0:
            exhausted_at_index = index

    return SpendBatch(
        plans=plans,
        balances_after=BucketBalances(account_vouchers, account_cash, center_vouchers, center_cash, center_credit),
        funds_available_micros=funds_micros,
        overspend_micros=total_overspend_micros,
        funds_exhausted_at_index=exhausted_at_index,
    )
