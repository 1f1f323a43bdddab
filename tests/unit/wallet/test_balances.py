"""Real and virtual balances, prepayment invoices, day closes and payouts (W11–W14, T1)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adledger_libs.clock import ManualClock
from adledger_wallet.domain.balances import (
    Balances,
    LedgerFigures,
    balances_from_ledger,
    day_close_at,
    day_close_for,
    day_closes_due,
    default_prepayment_threshold_micros,
    next_day_close_at,
    prepayment_invoice_needed,
    prepayment_threshold_micros,
    real_balance_micros,
    snapshot_at_day_close,
    virtual_balance_micros,
)
from adledger_wallet.domain.errors import InvalidAmountError
from adledger_wallet.domain.model import BusinessCenter

# The functions under test are pure and fast; a per-example deadline would only fail on a busy machine.
no_deadline = settings(deadline=None)
UNITS = 1_000_000


def test_w11_real_balance_is_paid_money_in_less_posted_spend_and_fees() -> None:
    assert real_balance_micros(paid_in_micros=100, posted_spend_micros=30, posted_fees_micros=5) == 65


def test_w11_virtual_balance_is_real_balance_less_open_holds() -> None:
    assert virtual_balance_micros(real_micros=65, open_holds_micros=40) == 25


def test_w11_open_holds_lower_only_the_virtual_balance() -> None:
    figures = LedgerFigures(paid_in_micros=100, posted_spend_micros=30, posted_fees_micros=5, open_holds_micros=80)
    assert balances_from_ledger(figures) == Balances(real_micros=65, virtual_micros=-15)


def test_w11_ledger_figures_are_non_negative_integer_sums() -> None:
    with pytest.raises(InvalidAmountError):
        LedgerFigures(paid_in_micros=-1, posted_spend_micros=0, posted_fees_micros=0, open_holds_micros=0)
    with pytest.raises(InvalidAmountError):
        LedgerFigures(paid_in_micros=1.0, posted_spend_micros=0, posted_fees_micros=0, open_holds_micros=0)  # type: ignore[arg-type]


def test_w12_default_threshold_is_half_the_last_payment() -> None:
    assert default_prepayment_threshold_micros(1000 * UNITS) == 500 * UNITS
    assert prepayment_threshold_micros(BusinessCenter(id="bc-1", currency="USD", last_payment_micros=1000 * UNITS)) == (
        500 * UNITS
    )


def test_w12_an_odd_last_payment_rounds_the_threshold_up() -> None:
    assert default_prepayment_threshold_micros(3) == 2
    # W12: with exact arithmetic 1 < 1.5 asks for an invoice, and 2 < 1.5 does not; the rounding keeps both.
    assert prepayment_invoice_needed(1, default_prepayment_threshold_micros(3), False)
    assert not prepayment_invoice_needed(2, default_prepayment_threshold_micros(3), False)


@no_deadline
@given(
    last_payment_micros=st.integers(min_value=0, max_value=10**15),
    percent=st.integers(min_value=0, max_value=100),
    virtual_micros=st.integers(min_value=-(10**15), max_value=10**15),
)
def test_w12_integer_threshold_decides_exactly_like_the_exact_fraction(
    last_payment_micros: int, percent: int, virtual_micros: int
) -> None:
    threshold_micros = default_prepayment_threshold_micros(last_payment_micros, percent)
    # Exact comparison without fractions: v < L * p / 100  <=>  100 * v < L * p.
    exactly_below = 100 * virtual_micros < last_payment_micros * percent
    assert prepayment_invoice_needed(virtual_micros, threshold_micros, False) == exactly_below


def test_w12_an_explicit_threshold_wins_over_the_default() -> None:
    center = BusinessCenter(id="bc-1", currency="USD", last_payment_micros=1000, prepayment_threshold_micros=7)
    assert prepayment_threshold_micros(center) == 7
    assert prepayment_threshold_micros(BusinessCenter(id="bc-2", currency="USD")) == 0


def test_w12_an_invoice_is_needed_once_virtual_balance_drops_below_the_threshold() -> None:
    assert not prepayment_invoice_needed(500, 500, open_prepayment_invoice=False)
    assert prepayment_invoice_needed(499, 500, open_prepayment_invoice=False)


def test_w12_at_most_one_prepayment_invoice_is_open_at_a_time() -> None:
    assert not prepayment_invoice_needed(-(10**9), 500, open_prepayment_invoice=True)


def test_w13_a_day_closes_at_the_next_utc_midnight() -> None:
    assert day_close_at(date(2026, 3, 1)) == datetime(2026, 3, 2, tzinfo=UTC)
    assert day_close_for(datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)) == date(2026, 3, 1)
    assert next_day_close_at(datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)) == datetime(2026, 3, 2, tzinfo=UTC)


def test_w13_a_moment_at_exactly_midnight_belongs_to_the_new_day() -> None:
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    assert day_close_for(midnight) == date(2026, 3, 2)
    assert next_day_close_at(midnight) == datetime(2026, 3, 3, tzinfo=UTC)


def test_w13_closes_missed_while_down_are_all_taken_in_order() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    last_closed_day = date(2026, 2, 28)
    assert day_closes_due(last_closed_day, clock.now()) == []
    clock.advance(timedelta(hours=60))  # 2026-03-04 00:00 UTC: the closes of 1, 2 and 3 March have passed.
    assert day_closes_due(last_closed_day, clock.now()) == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]


def test_w13_a_snapshot_records_both_balances_at_the_close() -> None:
    figures = LedgerFigures(paid_in_micros=100, posted_spend_micros=30, posted_fees_micros=0, open_holds_micros=20)
    snapshot = snapshot_at_day_close("acc-1", "USD", date(2026, 3, 1), figures)
    assert (snapshot.real_micros, snapshot.virtual_micros) == (70, 50)
    assert snapshot.closed_at == datetime(2026, 3, 2, tzinfo=UTC)
