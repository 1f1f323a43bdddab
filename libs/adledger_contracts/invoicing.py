"""Commands other services send the invoicing service on `invoicing.commands.v1`, and the
invoicing service's own events on `invoicing.events.v1` (rules I1-I8, W12, C1).

`InvoicePaid`, the event the wallet credits, lives in `adledger_contracts.wallet`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier
from adledger_libs.events import Command
from adledger_libs.money import CurrencyCode, PositiveMicros


class IssueInvoice(Command):
    """Ask for an invoice another service needs, e.g. an activation shortfall (C1); idempotent by `invoice_id`."""

    MESSAGE_TYPE: ClassVar[str] = "IssueInvoice"

    invoice_id: Identifier = Field(description="Chosen by the caller; the same id twice issues one invoice.")
    owner_id: Identifier = Field(description="The Business Center or ad account whose balance the payment funds.")
    amount_micros: PositiveMicros = Field(description="The amount to invoice.")
    currency: CurrencyCode = Field(description="The owner's currency (M2).")
    purpose: Literal["activation_shortfall"] = Field(description="Why it is needed.")
    reference_id: Identifier = Field(description="What it is for, e.g. the campaign id.")
    description: str = Field(min_length=1, description="The invoice line's text for people.")
    requested_by: str = Field(min_length=1, description="The service that asks.")
