"""Every e-mail's text, in one place (rule I8): a subject, a plain-text body and a simple HTML body
per template, filled from the EmailRequested's fields with `string.Template`.

Pure: no I/O. The fields a template needs are `TEMPLATE_FIELDS` of the contract; a request that
lacks one (or leaves it blank) is refused with `TemplateError`, whose reason the adapter puts on
the dead-letter topic. Values are inserted as given (they are already formatted for people) and
escaped in the HTML body.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template
from typing import get_args

from adledger_contracts.notifications import TEMPLATE_FIELDS, EmailTemplate


class TemplateError(ValueError):
    """The request cannot be rendered: an unknown template, or a missing field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EmailText:
    subject: str
    plain: str
    html_body: str


@dataclass(frozen=True)
class RenderedEmail:
    template: str
    subject: str
    plain: str
    html: str


TEMPLATES: dict[str, EmailText] = {
    "order_completed": EmailText(
        subject="Order #$order_number is complete: release the funds to $channel_name",
        plain=(
            "Hello $user_name,\n\n"
            "$channel_name marked your order #$order_number as complete and asks you to release the funds.\n"
            "You may dispute the order within 48 hours; without a dispute the funds are released to "
            "$channel_name after 48 hours.\n"
        ),
        html_body=(
            "<p>Hello $user_name,</p>"
            "<p>$channel_name marked your order <strong>#$order_number</strong> as complete and asks you to "
            "release the funds.</p>"
            "<p>You may dispute the order within 48 hours; without a dispute the funds are released to "
            "$channel_name after 48 hours.</p>"
        ),
    ),
    "invoice_issued": EmailText(
        subject="Invoice $invoice_number: $amount due on $due_on",
        plain="Invoice $invoice_number for $amount was issued. Please pay it by $due_on.\n",
        html_body="<p>Invoice <strong>$invoice_number</strong> for $amount was issued. Please pay it by $due_on.</p>",
    ),
    "invoice_paid": EmailText(
        subject="Invoice $invoice_number is paid",
        plain="We received $amount for invoice $invoice_number. Thank you.\n",
        html_body="<p>We received $amount for invoice <strong>$invoice_number</strong>. Thank you.</p>",
    ),
    "low_balance": EmailText(
        subject="Low balance: $owner_name",
        plain="The balance of $owner_name is $balance, below its alert threshold of $threshold.\n",
        html_body="<p>The balance of <strong>$owner_name</strong> is $balance, below its alert threshold of $threshold.</p>",
    ),
    "runway_low": EmailText(
        subject="$owner_name: funds for about $runway_days days of spend",
        plain=(
            "The balance of $owner_name is $balance. At its average daily spend of $average_daily_spend over the "
            "last 7 days it lasts about $runway_days days.\n"
        ),
        html_body=(
            "<p>The balance of <strong>$owner_name</strong> is $balance. At its average daily spend of "
            "$average_daily_spend over the last 7 days it lasts about <strong>$runway_days</strong> days.</p>"
        ),
    ),
    "prepaid_source_negative": EmailText(
        subject="Funding source $funding_source_name is negative",
        plain=(
            "The prepaid-invoice funding source $funding_source_name is at $balance after adjustment charges. "
            "An invoice for the negative balance follows at the UTC day close.\n"
        ),
        html_body=(
            "<p>The prepaid-invoice funding source <strong>$funding_source_name</strong> is at $balance after "
            "adjustment charges. An invoice for the negative balance follows at the UTC day close.</p>"
        ),
    ),
}

KNOWN_TEMPLATES: frozenset[str] = frozenset(get_args(EmailTemplate))


def required_fields(template: str) -> tuple[str, ...]:
    if template not in KNOWN_TEMPLATES or template not in TEMPLATES or template not in TEMPLATE_FIELDS:
        raise TemplateError(f"unknown template {template!r}")
    return TEMPLATE_FIELDS[template]


def check_fields(template: str, fields: dict[str, str]) -> None:
    """Refuse a request whose template is unknown or that lacks a field (or leaves it blank)."""
    missing = [name for name in required_fields(template) if not str(fields.get(name, "")).strip()]
    if missing:
        raise TemplateError(f"template {template} lacks field(s): {', '.join(missing)}")


def render(template: str, fields: dict[str, str]) -> RenderedEmail:
    check_fields(template, fields)
    text = TEMPLATES[template]
    names = required_fields(template)
    plain_values = {name: fields[name] for name in names}
    html_values = {name: html.escape(fields[name]) for name in names}
    # A subject is one line: a field with a line break does not add header lines.
    subject_values = {name: " ".join(fields[name].split()) for name in names}
    return RenderedEmail(
        template=template,
        subject=Template(text.subject).substitute(subject_values),
        plain=Template(text.plain).substitute(plain_values),
        html=(
            "<!DOCTYPE html><html><body>" + Template(text.html_body).substitute(html_values) + "</body></html>\n"
        ),
    )
