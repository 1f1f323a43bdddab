"""E-mails are asked for as events (rule I8) and rendered in one place: the invoicing service's
e-mail adapter, which knows every template, checks the fields, renders and sends (locally: to a
file sink) and then publishes `EmailSent`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier, Text, UtcDatetime
from adledger_libs.events import Event

EmailTemplate = Literal[
    "order_completed",
    "invoice_issued",
    "invoice_paid",
    "low_balance",
    "runway_low",
    "prepaid_source_negative",
]

#: The fields each template needs; the adapter dead-letters a request that lacks one.
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "order_completed": ("user_name", "channel_name", "order_number"),
    "invoice_issued": ("invoice_number", "amount", "due_on"),
    "invoice_paid": ("invoice_number", "amount"),
    "low_balance": ("owner_name", "balance", "threshold"),
    "runway_low": ("owner_name", "balance", "average_daily_spend", "runway_days"),
    "prepaid_source_negative": ("funding_source_name", "balance"),
}


class EmailRequested(Event):
    """An e-mail to render and send (rules I8, O4)."""

    MESSAGE_TYPE: ClassVar[str] = "EmailRequested"

    email_id: Identifier = Field(description="Idempotency key: the same id is sent once.")
    template: EmailTemplate = Field(description="The template to render.")
    recipient_user_id: Identifier | None = Field(default=None, description="The user to e-mail, when a platform user.")
    recipient_address: Text | None = Field(default=None, description="An address (a billing contact), when not a user.")
    subject_id: Identifier = Field(description="What it is about: an order, an invoice, a Business Center.")
    fields: dict[str, str] = Field(description="The template's fields, already formatted for people (amounts too).")
    requested_at: UtcDatetime = Field(description="When (UTC).")
