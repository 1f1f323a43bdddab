"""Commands other services send the invoicing service on `invoicing.commands.v1`, and the
invoicing service's own events on `invoicing.events.v1` (rules I1-I8, W12, C1).

`InvoicePaid`, the event the wallet credits, lives in `adledger_contracts.wallet`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier, Name, Text, UtcDatetime, Version
from adledger_libs.events import Command, Event, Message
from adledger_libs.money import CurrencyCode, Micros, PositiveMicros


class IssueInvoice(Command):
    """Ask for an invoice another service needs, e.g. an activation shortfall (C1); idempotent by `invoice_id`."""

    MESSAGE_TYPE: ClassVar[str] = "IssueInvoice"
    #: An invoice asked for by another service (issue 12).
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset({"campaign", "sends"})

    invoice_id: Identifier = Field(description="Chosen by the caller; the same id twice issues one invoice.")
    owner_id: Identifier = Field(description="The Business Center or ad account whose balance the payment funds.")
    amount_micros: PositiveMicros = Field(description="The amount to invoice.")
    currency: CurrencyCode = Field(description="The owner's currency (M2).")
    purpose: Literal["activation_shortfall"] = Field(description="Why it is needed.")
    reference_id: Identifier = Field(description="What it is for, e.g. the campaign id.")
    description: Text = Field(min_length=1, description="The invoice line's text for people.")
    requested_by: Identifier = Field(description="The service that asks.")


# Events of the invoicing service on `invoicing.events.v1` (key: the payer's id) -------------------

InvoiceStatus = Literal["draft", "open", "paid", "void", "uncollectible"]
InvoicePurpose = Literal[
    "top_up",
    "prepayment",
    "activation_shortfall",
    "monthly_spend",
    "funding_source_top_up",
    "funding_source_day_close",
    "card_charge",
]


class InvoiceLine(Message):
    """One line of an invoice."""

    description: Text = Field(min_length=1, description="What is billed, for people.")
    amount_micros: Micros = Field(description="The line's amount (negative for a credit line, e.g. a final-cost adjustment).")


class InvoiceStatusChanged(Event):
    """An invoice was issued or changed status (rules I1, I5, I8): the whole invoice, as a snapshot
    with a per-invoice `version`; consumers keep the newest version."""

    MESSAGE_TYPE: ClassVar[str] = "InvoiceStatusChanged"

    invoice_id: Identifier = Field(description="The invoice.")
    number: Name = Field(description="The invoice number for people, sequential per service (e.g. INV-000042).")
    payer_id: Identifier = Field(description="Who pays: a Business Center or ad account, or a funding source.")
    payer_kind: Literal["owner", "funding_source"] = Field(description="owner: the wallet credits the payment; funding_source: the invoicing service does.")
    purpose: InvoicePurpose = Field(description="Why the invoice exists.")
    previous_status: InvoiceStatus | None = Field(description="The status before; null when the invoice was just created.")
    status: InvoiceStatus = Field(description="The status now (I5).")
    amount_micros: PositiveMicros = Field(description="The total to pay.")
    currency: CurrencyCode = Field(description="Currency (M2).")
    lines: list[InvoiceLine] = Field(description="The lines; they add up to the total.")
    reference_id: Identifier | None = Field(default=None, description="What it is for: a campaign, a month, a day, a charge.")
    issued_at: UtcDatetime = Field(description="When it was issued (UTC).")
    due_on: Name = Field(description="The day it is due (YYYY-MM-DD, UTC).")
    paid_at: UtcDatetime | None = Field(default=None, description="When the provider confirmed the payment (UTC).")
    payment_id: Identifier | None = Field(default=None, description="The provider's payment that paid it.")
    version: Version = Field(ge=1, description="Grows by one with each change of this invoice.")
    changed_at: UtcDatetime = Field(description="When this change happened (UTC).")


class FundingSourceCharged(Event):
    """A charge was posted to a funding source (rule I6): a prepaid source may go negative; a
    credit-card source gets one card payment (an automatically collected invoice) per charge."""

    MESSAGE_TYPE: ClassVar[str] = "FundingSourceCharged"

    funding_source_id: Identifier = Field(description="The funding source.")
    kind: Literal["prepaid_invoice", "credit_card"] = Field(description="Its type.")
    charge_id: Identifier = Field(description="The charge (idempotency key of the caller).")
    amount_micros: PositiveMicros = Field(description="The amount charged.")
    currency: CurrencyCode = Field(description="Currency.")
    description: Text = Field(description="What it is for, e.g. an adjustment charge of a send.")
    balance_after_micros: Micros = Field(description="The source's balance after the charge (may be negative).")
    card_invoice_id: Identifier | None = Field(default=None, description="credit_card: the card payment's invoice.")
    charged_at: UtcDatetime = Field(description="When (UTC).")
