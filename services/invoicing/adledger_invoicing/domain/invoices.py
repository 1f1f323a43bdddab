"""Invoices, top-ups and payments as pure rules (I1-I7, W12): no I/O, no awaits.

An invoice is created open (issued) or as a draft; it is paid once, by one provider payment;
a failed payment changes nothing; a payment notified twice, or a failure notified after the
success, changes nothing either (I5). Amounts are int micros (M1) of one currency (M2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Literal

from adledger_libs.money import MAXIMUM_MICROS, MICROS_PER_UNIT
from adledger_libs.refusals import Refusal

#: Who pays an invoice: an owner (the wallet credits the payment) or a funding source (this service does).
PayerKind = Literal["owner", "funding_source"]

#: Days an invoice is due after it is issued.
DEFAULT_DUE_DAYS = 14


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class Purpose(StrEnum):
    TOP_UP = "top_up"
    PREPAYMENT = "prepayment"
    ACTIVATION_SHORTFALL = "activation_shortfall"
    MONTHLY_SPEND = "monthly_spend"
    FUNDING_SOURCE_TOP_UP = "funding_source_top_up"
    FUNDING_SOURCE_DAY_CLOSE = "funding_source_day_close"
    CARD_CHARGE = "card_charge"


#: Purposes whose payment the invoicing service credits itself (a funding source in the ledger);
#: every other paid invoice is credited by the wallet from `InvoicePaid`.
FUNDING_SOURCE_PURPOSES = frozenset({Purpose.FUNDING_SOURCE_TOP_UP, Purpose.FUNDING_SOURCE_DAY_CLOSE, Purpose.CARD_CHARGE})

#: I5: the states an invoice may move to from each state. Paid and void are final.
TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.OPEN, InvoiceStatus.VOID}),
    InvoiceStatus.OPEN: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}


class InvoicingError(Refusal):
    """Base of the domain's rejections: the request's fault (a 4xx, or a dead-lettered record)."""


class IllegalTransitionError(InvoicingError):
    def __init__(self, invoice_id: str, current: InvoiceStatus, wanted: InvoiceStatus) -> None:
        super().__init__(f"invoice {invoice_id} is {current.value}; it cannot become {wanted.value} (I5)")


class InvalidAmountError(InvoicingError):
    """An amount that is not a positive integer of micros, or lines that do not add up."""


class InvalidInvoiceIdError(InvoicingError):
    """An invoice id too long for the ids derived from it (asked for by another service, C1)."""


class CurrencyMismatchError(InvoicingError):
    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"currency mismatch: the account is in {expected}, the request in {got} (M2)")


@dataclass(frozen=True)
class Line:
    description: str
    amount_micros: int


@dataclass(frozen=True)
class Invoice:
    id: str
    number: int
    payer_id: str
    payer_kind: PayerKind
    purpose: Purpose
    status: InvoiceStatus
    currency: str
    lines: tuple[Line, ...]
    issued_at: datetime
    due_on: date
    reference_id: str | None = None
    period_start: date | None = None
    automatic_collection: bool = False
    recipient_user_id: str | None = None
    recipient_address: str | None = None
    paid_at: datetime | None = None
    payment_id: str | None = None
    version: int = 1

    @property
    def amount_micros(self) -> int:
        return sum(line.amount_micros for line in self.lines)

    @property
    def display_number(self) -> str:
        return invoice_number(self.number)

    @property
    def credited_by_wallet(self) -> bool:
        return self.purpose not in FUNDING_SOURCE_PURPOSES


def invoice_number(number: int) -> str:
    return f"INV-{number:06d}"


#: The longest invoice id: the ids derived from it (event ids `invoice:<id>:v<version>`, e-mail ids
#: `invoice:<id>:invoice_issued`) must stay within the contract's 128 characters.
MAXIMUM_INVOICE_ID_LENGTH = 96


def derived_invoice_id(*parts: str) -> str:
    """The id of an invoice the service derives from what it is for (`month-<account>-2026-11`),
    so the same cause always names the same invoice. Parts long enough to pass the limit (an ad
    account id of 128 characters) are replaced by their digest, still one id per cause."""
    readable = "-".join(parts)
    if len(readable) <= MAXIMUM_INVOICE_ID_LENGTH:
        return readable
    return f"{parts[0]}-{hashlib.sha256(readable.encode()).hexdigest()[:40]}"


def new_invoice(
    *,
    invoice_id: str,
    number: int,
    payer_id: str,
    payer_kind: PayerKind,
    purpose: Purpose,
    currency: str,
    lines: list[Line],
    now: datetime,
    reference_id: str | None = None,
    period_start: date | None = None,
    automatic_collection: bool = False,
    recipient_user_id: str | None = None,
    recipient_address: str | None = None,
    draft: bool = False,
) -> Invoice:
    """A new invoice, issued at once unless `draft`. Its total must be positive (M1)."""
    if not 0 < len(invoice_id) <= MAXIMUM_INVOICE_ID_LENGTH:
        raise InvalidInvoiceIdError(f"an invoice id has 1 to {MAXIMUM_INVOICE_ID_LENGTH} characters")
    for line in lines:
        if type(line.amount_micros) is not int:
            raise InvalidAmountError("amounts are integers of micros (M1)")
    if not lines or sum(line.amount_micros for line in lines) <= 0:
        raise InvalidAmountError("an invoice's total must be positive")
    if sum(line.amount_micros for line in lines) > MAXIMUM_MICROS:
        raise InvalidAmountError(f"an invoice's total must be at most {MAXIMUM_MICROS} micros (M1)")
    return Invoice(
        id=invoice_id, number=number, payer_id=payer_id, payer_kind=payer_kind, purpose=purpose,
        status=InvoiceStatus.DRAFT if draft else InvoiceStatus.OPEN, currency=currency, lines=tuple(lines),
        issued_at=now, due_on=(now + timedelta(days=DEFAULT_DUE_DAYS)).date(), reference_id=reference_id,
        period_start=period_start, automatic_collection=automatic_collection,
        recipient_user_id=recipient_user_id, recipient_address=recipient_address,
    )


def transition(invoice: Invoice, wanted: InvoiceStatus, **changes: object) -> Invoice:
    """I5: move to `wanted` if the state machine allows it; raises `IllegalTransitionError`."""
    if wanted not in TRANSITIONS[invoice.status]:
        raise IllegalTransitionError(invoice.id, invoice.status, wanted)
    return replace(invoice, status=wanted, version=invoice.version + 1, **changes)  # type: ignore[arg-type]


# Top-ups (I1, I2, I4) ------------------------------------------------------------------------------


class SubscriptionInactiveError(InvoicingError):
    def __init__(self, owner_id: str) -> None:
        super().__init__(f"{owner_id} has no active subscription: only subscribers can hold a credit balance (I4)")


@dataclass(frozen=True)
class TopUpPlan:
    """What a top-up request comes to: an amount to invoice, or nothing and why (I2)."""

    amount_micros: int
    reason: str | None = None

    @property
    def invoiced(self) -> bool:
        return self.amount_micros > 0


def plan_top_up(
    *,
    owner_id: str,
    subscription_active: bool,
    account_currency: str | None,
    currency: str,
    amount_micros: int | None,
    target_micros: int | None,
    balance_micros: int | None,
) -> TopUpPlan:
    """I1, I2, I4 and M2 for one request.

    - I4: only an owner with an active subscription may top up.
    - M2: the request's currency must be the account's.
    - I1: an amount is invoiced as asked.
    - I2: a target is invoiced as target − balance (the real balance, W11), so the balance
      equals the target once paid; at or below the balance nothing is invoiced, and the plan
      says so. Open invoices are neither counted nor settled (I1: pending top-ups are not in the
      balance; I3: money in does not settle them).
    """
    if not subscription_active:
        raise SubscriptionInactiveError(owner_id)
    if account_currency is not None and account_currency != currency:
        raise CurrencyMismatchError(account_currency, currency)
    if (amount_micros is None) == (target_micros is None):
        raise InvalidAmountError("give either amount_micros or target_micros")
    if amount_micros is not None:
        if type(amount_micros) is not int or amount_micros <= 0:
            raise InvalidAmountError("amount_micros must be a positive integer (M1)")
        return TopUpPlan(amount_micros)
    assert target_micros is not None
    if type(target_micros) is not int or target_micros < 0:
        raise InvalidAmountError("target_micros must be a non-negative integer (M1)")
    if balance_micros is None:
        raise BalanceUnknownError(owner_id)
    if target_micros <= balance_micros:
        return TopUpPlan(0, f"the balance ({format_money(balance_micros, currency)}) is already at or above the target "
                            f"({format_money(target_micros, currency)}); no invoice was created (I2)")
    if target_micros - balance_micros > MAXIMUM_MICROS:
        # An overspent balance and a target near the bound: the invoice could not be stored (M1).
        raise InvalidAmountError(f"the target is {target_micros - balance_micros} micros above the balance; "
                                 f"an invoice is at most {MAXIMUM_MICROS} micros")
    return TopUpPlan(target_micros - balance_micros)


class BalanceUnknownError(InvoicingError):
    def __init__(self, owner_id: str) -> None:
        super().__init__(f"no balance of {owner_id} has reached the invoicing service yet (balances.v1)")


# Prepayment (W12) ----------------------------------------------------------------------------------


def prepayment_amount(*, virtual_micros: int, last_payment_micros: int, threshold_micros: int) -> int:
    """W12: the prepayment invoice brings the virtual balance back to the last payment received;
    with no payment yet (threshold 0), to the threshold's double, at least what is owed."""
    target = last_payment_micros if last_payment_micros > 0 else 2 * threshold_micros
    return max(target - virtual_micros, 0)


# Payments (I5) -------------------------------------------------------------------------------------


class PaymentOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Effect(StrEnum):
    """What a provider notification did; recorded with the notification."""

    PAID = "paid"  # the invoice became paid: the one credit
    ALREADY_PAID = "already_paid"  # the same payment notified again: nothing
    PAYMENT_FAILED = "payment_failed"  # nothing credited; the invoice stays payable
    FAILURE_AFTER_SUCCESS = "failure_after_success_ignored"  # a late failure does not undo a success
    REFUND_DUE = "refund_due"  # money for an invoice already paid by another payment, or void: give it back
    AMOUNT_MISMATCH = "amount_mismatch"  # not the invoice's amount or currency: nothing, an operator looks


@dataclass(frozen=True)
class PaymentDecision:
    effect: Effect
    invoice: Invoice


def apply_payment_notification(
    invoice: Invoice,
    *,
    payment_id: str,
    outcome: PaymentOutcome,
    amount_micros: int,
    currency: str,
    payment_succeeded_before: bool,
    now: datetime,
) -> PaymentDecision:
    """I5: a provider notification about one payment of `invoice`, in any order, any number of times.

    `payment_succeeded_before` is whether a success of this same payment was recorded earlier.
    Only one outcome credits: the first success of a payment of the right amount while the
    invoice is payable (open or uncollectible). Everything else leaves the invoice as it is.
    """
    if outcome is PaymentOutcome.FAILED:
        if payment_succeeded_before or invoice.payment_id == payment_id:
            return PaymentDecision(Effect.FAILURE_AFTER_SUCCESS, invoice)
        return PaymentDecision(Effect.PAYMENT_FAILED, invoice)
    if amount_micros != invoice.amount_micros or currency != invoice.currency:
        return PaymentDecision(Effect.AMOUNT_MISMATCH, invoice)
    if invoice.status is InvoiceStatus.PAID:
        if invoice.payment_id == payment_id:
            return PaymentDecision(Effect.ALREADY_PAID, invoice)
        return PaymentDecision(Effect.REFUND_DUE, invoice)
    if invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        return PaymentDecision(Effect.PAID, transition(invoice, InvoiceStatus.PAID, paid_at=now, payment_id=payment_id))
    # A draft cannot be paid; a void invoice's money goes back.
    return PaymentDecision(Effect.REFUND_DUE, invoice)


# Funding sources (I6) ------------------------------------------------------------------------------


def day_close_amount(*, balance_micros: int, open_day_close_invoices_micros: int) -> int:
    """I6: at the UTC day close, one invoice for the remaining negative balance not yet invoiced
    (a day-close invoice still open already asks for its part, so it is not asked twice)."""
    return max(-balance_micros - open_day_close_invoices_micros, 0)


LowBalanceAlert = Literal["prepaid_source_negative", "low_balance"]


def low_balance_alert(*, balance_micros: int, threshold_micros: int) -> LowBalanceAlert | None:
    """I6: the e-mail a charge calls for at once: `prepaid_source_negative` below zero,
    `low_balance` below the source's threshold, else none."""
    if balance_micros < 0:
        return "prepaid_source_negative"
    if balance_micros < threshold_micros:
        return "low_balance"
    return None


# Time (T1) -----------------------------------------------------------------------------------------


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def due_months(*, last_closed: date | None, first_month: date, now: datetime) -> list[date]:
    """Calendar months that ended (UTC) and are not closed yet, oldest first (I7, T1)."""
    month = next_month(last_closed) if last_closed is not None else first_month
    current = month_start(now)
    months: list[date] = []
    while month < current:
        months.append(month)
        month = next_month(month)
    return months


def due_days(*, last_closed: date | None, first_day: date, now: datetime) -> list[date]:
    """UTC days that ended and are not closed yet, oldest first (I6, T1)."""
    day = last_closed + timedelta(days=1) if last_closed is not None else first_day
    days: list[date] = []
    while day < now.date():
        days.append(day)
        day += timedelta(days=1)
    return days


# Formatting for people -----------------------------------------------------------------------------


def format_money(amount_micros: int, currency: str) -> str:
    """`USD 1,234.50` from micros, exactly (no floats): two decimals, more only when needed."""
    sign = "-" if amount_micros < 0 else ""
    units, micros = divmod(abs(amount_micros), MICROS_PER_UNIT)
    fraction = f"{micros:06d}"
    fraction = fraction[:2] if fraction[2:] == "0000" else fraction.rstrip("0")
    return f"{currency} {sign}{units:,}.{fraction}"


def month_label(month: date) -> str:
    return month.strftime("%B %Y")
