"""The invoicing rules as pure functions (I1-I7, W12, T1): no database, no broker."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from adledger_invoicing.domain import invoices as domain
from adledger_invoicing.domain import signatures
from adledger_invoicing.domain.invoices import Effect, InvoiceStatus, Line, PaymentOutcome, Purpose

USD = 1_000_000
NOW = datetime(2026, 11, 21, 9, tzinfo=UTC)


def invoice(amount_micros: int = 10 * USD, status: InvoiceStatus = InvoiceStatus.OPEN, payment_id: str | None = None) -> domain.Invoice:
    issued = domain.new_invoice(
        invoice_id="inv-1", number=7, payer_id="bc-1", payer_kind="owner", purpose=Purpose.TOP_UP, currency="USD",
        lines=[Line("Top-up", amount_micros)], now=NOW,
    )
    if status is InvoiceStatus.PAID:
        return domain.transition(issued, InvoiceStatus.PAID, paid_at=NOW, payment_id=payment_id or "pay-1")
    if status is not InvoiceStatus.OPEN:
        return domain.transition(issued, status)
    return issued


def plan(**overrides: object) -> domain.TopUpPlan:
    arguments: dict[str, object] = {
        "owner_id": "bc-1", "subscription_active": True, "account_currency": "USD", "currency": "USD",
        "amount_micros": None, "target_micros": None, "balance_micros": 3 * USD,
    }
    arguments.update(overrides)
    return domain.plan_top_up(**arguments)  # type: ignore[arg-type]


# I1 --------------------------------------------------------------------------------------------------


def test_i1_a_top_up_of_an_amount_invoices_exactly_that_amount_whatever_the_balance() -> None:
    assert plan(amount_micros=25 * USD).amount_micros == 25 * USD
    assert plan(amount_micros=25 * USD, balance_micros=-4 * USD).amount_micros == 25 * USD


def test_i1_an_invoice_is_issued_open_and_only_a_provider_success_makes_it_paid() -> None:
    issued = invoice()
    assert issued.status is InvoiceStatus.OPEN and issued.paid_at is None
    assert issued.credited_by_wallet, "I1: the wallet credits it once it is paid, not before"
    assert domain.invoice_number(issued.number) == "INV-000007"


@pytest.mark.parametrize("amount", [0, -1, 1.5])
def test_i1_m1_an_amount_that_is_not_a_positive_integer_is_refused(amount: object) -> None:
    with pytest.raises(domain.InvalidAmountError):
        plan(amount_micros=amount)


# I2 --------------------------------------------------------------------------------------------------


def test_i2_w11_a_target_invoices_the_target_minus_the_existing_real_balance() -> None:
    result = plan(target_micros=10 * USD, balance_micros=3 * USD)
    assert (result.invoiced, result.amount_micros) == (True, 7 * USD)
    overspent = plan(target_micros=10 * USD, balance_micros=-2 * USD)
    assert overspent.amount_micros == 12 * USD, "the balance equals the target once paid, even from below zero"


@pytest.mark.parametrize("balance", [10 * USD, 11 * USD])
def test_i2_a_target_at_or_below_the_balance_creates_no_invoice_and_says_so(balance: int) -> None:
    result = plan(target_micros=10 * USD, balance_micros=balance)
    assert not result.invoiced and result.amount_micros == 0
    assert result.reason is not None and "no invoice" in result.reason and "USD 10.00" in result.reason


def test_i2_a_target_needs_a_known_balance_and_exactly_one_of_amount_or_target() -> None:
    with pytest.raises(domain.BalanceUnknownError):
        plan(target_micros=10 * USD, balance_micros=None)
    with pytest.raises(domain.InvalidAmountError):
        plan(target_micros=10 * USD, amount_micros=USD)
    with pytest.raises(domain.InvalidAmountError):
        plan()


# I3 --------------------------------------------------------------------------------------------------


def test_i3_paying_a_top_up_changes_only_that_invoice_and_leaves_an_outstanding_one_open() -> None:
    outstanding = invoice(amount_micros=4 * USD)
    top_up = domain.new_invoice(
        invoice_id="inv-2", number=8, payer_id="bc-1", payer_kind="owner", purpose=Purpose.TOP_UP, currency="USD",
        lines=[Line("Top-up", 10 * USD)], now=NOW,
    )
    decision = domain.apply_payment_notification(
        top_up, payment_id="pay-2", outcome=PaymentOutcome.SUCCEEDED, amount_micros=10 * USD, currency="USD",
        payment_succeeded_before=False, now=NOW,
    )
    assert decision.invoice.status is InvoiceStatus.PAID
    assert outstanding.status is InvoiceStatus.OPEN, "I3: money in settles nothing else"
    wrong = domain.apply_payment_notification(
        outstanding, payment_id="pay-2", outcome=PaymentOutcome.SUCCEEDED, amount_micros=10 * USD, currency="USD",
        payment_succeeded_before=True, now=NOW,
    )
    assert wrong.effect is Effect.AMOUNT_MISMATCH and wrong.invoice.status is InvoiceStatus.OPEN


# I4 --------------------------------------------------------------------------------------------------


def test_i4_a_top_up_for_an_owner_without_an_active_subscription_is_rejected() -> None:
    with pytest.raises(domain.SubscriptionInactiveError):
        plan(amount_micros=USD, subscription_active=False)


def test_m2_a_top_up_in_another_currency_than_the_account_is_rejected() -> None:
    with pytest.raises(domain.CurrencyMismatchError):
        plan(amount_micros=USD, currency="EUR")


# I5 --------------------------------------------------------------------------------------------------


def notify(target: domain.Invoice, outcome: PaymentOutcome, *, payment_id: str = "pay-1", before: bool = False, amount: int | None = None) -> domain.PaymentDecision:
    return domain.apply_payment_notification(
        target, payment_id=payment_id, outcome=outcome, amount_micros=target.amount_micros if amount is None else amount,
        currency="USD", payment_succeeded_before=before, now=NOW + timedelta(minutes=1),
    )


def test_i5_a_success_pays_an_open_invoice_once_and_the_same_payment_again_does_nothing() -> None:
    first = notify(invoice(), PaymentOutcome.SUCCEEDED)
    assert first.effect is Effect.PAID and first.invoice.status is InvoiceStatus.PAID
    assert (first.invoice.payment_id, first.invoice.version) == ("pay-1", 2)
    second = notify(first.invoice, PaymentOutcome.SUCCEEDED, before=True)
    assert second.effect is Effect.ALREADY_PAID and second.invoice == first.invoice


def test_i5_a_failed_payment_changes_nothing_and_the_invoice_stays_payable() -> None:
    failed = notify(invoice(), PaymentOutcome.FAILED)
    assert failed.effect is Effect.PAYMENT_FAILED and failed.invoice.status is InvoiceStatus.OPEN
    assert notify(failed.invoice, PaymentOutcome.SUCCEEDED, payment_id="pay-2").effect is Effect.PAID


def test_i5_a_failure_reported_after_the_success_does_not_undo_it() -> None:
    paid = notify(invoice(), PaymentOutcome.SUCCEEDED).invoice
    late = notify(paid, PaymentOutcome.FAILED, before=True)
    assert late.effect is Effect.FAILURE_AFTER_SUCCESS and late.invoice.status is InvoiceStatus.PAID
    # Out of order the other way round: the failure of a payment whose success was recorded,
    # even if the invoice row were read before it was paid.
    assert notify(invoice(), PaymentOutcome.FAILED, before=True).effect is Effect.FAILURE_AFTER_SUCCESS


def test_i5_out_of_order_a_failure_first_then_the_success_of_the_same_payment_pays_once() -> None:
    failed = notify(invoice(), PaymentOutcome.FAILED)
    paid = notify(failed.invoice, PaymentOutcome.SUCCEEDED)
    assert paid.effect is Effect.PAID
    assert notify(paid.invoice, PaymentOutcome.SUCCEEDED, before=True).effect is Effect.ALREADY_PAID


def test_i5_a_second_payment_of_a_paid_invoice_or_money_for_a_void_one_is_due_back_not_credited() -> None:
    paid = invoice(status=InvoiceStatus.PAID, payment_id="pay-1")
    assert notify(paid, PaymentOutcome.SUCCEEDED, payment_id="pay-9").effect is Effect.REFUND_DUE
    assert notify(invoice(status=InvoiceStatus.VOID), PaymentOutcome.SUCCEEDED).effect is Effect.REFUND_DUE
    assert notify(invoice(), PaymentOutcome.SUCCEEDED, amount=USD).effect is Effect.AMOUNT_MISMATCH


def test_i5_invoice_states_draft_open_paid_void_uncollectible_and_their_transitions() -> None:
    assert {status.value for status in InvoiceStatus} == {"draft", "open", "paid", "void", "uncollectible"}
    uncollectible = invoice(status=InvoiceStatus.UNCOLLECTIBLE)
    assert notify(uncollectible, PaymentOutcome.SUCCEEDED).effect is Effect.PAID, "a late payment still pays it"
    for final in (InvoiceStatus.PAID, InvoiceStatus.VOID):
        with pytest.raises(domain.IllegalTransitionError):
            domain.transition(invoice(status=final), InvoiceStatus.OPEN)
    draft = domain.new_invoice(
        invoice_id="d", number=1, payer_id="bc", payer_kind="owner", purpose=Purpose.TOP_UP, currency="USD",
        lines=[Line("x", 1)], now=NOW, draft=True,
    )
    assert domain.transition(draft, InvoiceStatus.OPEN).status is InvoiceStatus.OPEN
    with pytest.raises(domain.IllegalTransitionError):
        domain.transition(draft, InvoiceStatus.PAID)


def test_i5_webhook_signatures_good_bad_missing_and_replayed() -> None:
    body = b'{"id":"evt_1","type":"payment.succeeded"}'
    stamp = int(NOW.timestamp())
    header = signatures.sign("secret", stamp, body)
    assert signatures.verify("secret", header, body, NOW) == stamp
    with pytest.raises(signatures.BadSignatureError):
        signatures.verify("another secret", header, body, NOW)
    with pytest.raises(signatures.BadSignatureError):
        signatures.verify("secret", header, body + b" ", NOW)
    with pytest.raises(signatures.MissingSignatureError):
        signatures.verify("secret", None, body, NOW)
    with pytest.raises(signatures.BadSignatureError):
        signatures.verify("secret", "v1=abc", body, NOW)
    with pytest.raises(signatures.StaleSignatureError):
        signatures.verify("secret", header, body, NOW + timedelta(seconds=301))
    assert signatures.verify("secret", header, body, NOW + timedelta(seconds=300)) == stamp


# I6 --------------------------------------------------------------------------------------------------


def test_i6_the_day_close_invoices_the_remaining_negative_balance_not_yet_invoiced() -> None:
    assert domain.day_close_amount(balance_micros=-7 * USD, open_day_close_invoices_micros=0) == 7 * USD
    assert domain.day_close_amount(balance_micros=-7 * USD, open_day_close_invoices_micros=7 * USD) == 0
    assert domain.day_close_amount(balance_micros=-9 * USD, open_day_close_invoices_micros=7 * USD) == 2 * USD
    assert domain.day_close_amount(balance_micros=5 * USD, open_day_close_invoices_micros=0) == 0


def test_i6_a_charge_below_zero_alerts_the_low_balance_contacts_at_once() -> None:
    assert domain.low_balance_alert(balance_micros=-1, threshold_micros=0) == "prepaid_source_negative"
    assert domain.low_balance_alert(balance_micros=USD, threshold_micros=2 * USD) == "low_balance"
    assert domain.low_balance_alert(balance_micros=2 * USD, threshold_micros=2 * USD) is None


def test_i6_t1_utc_days_due_for_closing_are_the_ended_ones_oldest_first() -> None:
    now = datetime(2026, 11, 21, 0, 0, 1, tzinfo=UTC)
    assert domain.due_days(last_closed=None, first_day=date(2026, 11, 19), now=now) == [date(2026, 11, 19), date(2026, 11, 20)]
    assert domain.due_days(last_closed=date(2026, 11, 20), first_day=date(2026, 11, 19), now=now) == []
    assert domain.due_days(last_closed=None, first_day=date(2026, 11, 21), now=now) == [], "today is not over"


# I7 --------------------------------------------------------------------------------------------------


def test_i7_t1_calendar_months_due_for_invoicing_are_the_ended_ones() -> None:
    now = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
    assert domain.due_months(last_closed=None, first_month=date(2026, 11, 1), now=now) == [date(2026, 11, 1), date(2026, 12, 1)]
    assert domain.due_months(last_closed=date(2026, 12, 1), first_month=date(2026, 11, 1), now=now) == []
    assert domain.due_months(last_closed=None, first_month=date(2026, 11, 1), now=datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == []
    assert domain.month_start(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == date(2026, 12, 1)
    assert domain.next_month(date(2026, 12, 1)) == date(2027, 1, 1)


# W12 -------------------------------------------------------------------------------------------------


def test_w12_the_prepayment_invoice_brings_the_virtual_balance_back_to_the_last_payment() -> None:
    assert domain.prepayment_amount(virtual_micros=40 * USD, last_payment_micros=100 * USD, threshold_micros=50 * USD) == 60 * USD
    assert domain.prepayment_amount(virtual_micros=-5 * USD, last_payment_micros=100 * USD, threshold_micros=50 * USD) == 105 * USD
    assert domain.prepayment_amount(virtual_micros=-5 * USD, last_payment_micros=0, threshold_micros=0) == 5 * USD


# M1: formatting for people is exact -----------------------------------------------------------------


def test_m1_amounts_for_people_are_formatted_from_micros_exactly() -> None:
    assert domain.format_money(1_234_500_000, "USD") == "USD 1,234.50"
    assert domain.format_money(1, "USD") == "USD 0.000001"
    assert domain.format_money(-2_500_000, "EUR") == "EUR -2.50"
    assert domain.format_money(10_123_400, "USD") == "USD 10.1234"
