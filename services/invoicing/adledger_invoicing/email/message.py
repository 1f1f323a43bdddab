"""An EmailRequested rendered into one RFC 5322 message (plain text + HTML alternative).

Deterministic: the same request gives the same bytes (the Date is the request's time, the
Message-ID and the MIME boundary come from the email_id), so writing it again after a crash
writes the same e-mail, never a different second one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from urllib.parse import quote

from adledger_contracts.notifications import EmailRequested

from adledger_invoicing.email.templates import RenderedEmail, TemplateError, render

SENDER = "adledger <no-reply@adledger.local>"
_MAX_NAME = 200


@dataclass(frozen=True)
class OutgoingEmail:
    email_id: str
    template: str
    recipient: str
    subject_id: str
    subject: str
    content: bytes

    @property
    def file_name(self) -> str:
        return file_name_for(self.email_id)


def recipient_of(request: EmailRequested) -> str:
    """An address when the request gives one; otherwise the platform user, or the subject's contacts
    (resolving users and billing contacts to addresses is the sender's job, not built locally)."""
    if request.recipient_address:
        return request.recipient_address
    if request.recipient_user_id:
        return f"user:{request.recipient_user_id}"
    return f"contacts:{request.subject_id}"


def file_name_for(email_id: str) -> str:
    """One file per email_id: the id, percent-encoded so it is a safe file name; a very long id is hashed."""
    encoded = quote(email_id, safe="-_.:@")
    if len(encoded) > _MAX_NAME:
        encoded = "sha256-" + hashlib.sha256(email_id.encode()).hexdigest()
    return encoded + ".eml"


def compose(request: EmailRequested) -> OutgoingEmail:
    """Render and build the message; `TemplateError` when it cannot be (the adapter dead-letters it)."""
    rendered: RenderedEmail = render(request.template, dict(request.fields))
    try:
        return _build(request, rendered)
    except ValueError as error:  # e.g. a line break in an address: never a header injection
        raise TemplateError(f"cannot build the message: {error}") from None


def _build(request: EmailRequested, rendered: RenderedEmail) -> OutgoingEmail:
    recipient = recipient_of(request)
    digest = hashlib.sha256(request.email_id.encode()).hexdigest()
    message = EmailMessage()
    message["Message-ID"] = f"<{digest[:32]}@adledger.local>"
    message["Date"] = format_datetime(request.requested_at)
    message["From"] = SENDER
    # A platform user's or a subject's contacts have no address here: the recipient travels in a header.
    message["To"] = request.recipient_address or "undisclosed-recipients:;"
    message["X-Adledger-Recipient"] = recipient
    message["Subject"] = rendered.subject
    message["X-Adledger-Email-Id"] = request.email_id
    message["X-Adledger-Template"] = request.template
    message["X-Adledger-Subject-Id"] = request.subject_id
    message.set_content(rendered.plain, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    message.set_boundary(f"adledger-{digest[:24]}")
    return OutgoingEmail(
        email_id=request.email_id,
        template=request.template,
        recipient=recipient,
        subject_id=request.subject_id,
        subject=rendered.subject,
        content=message.as_bytes(policy=SMTP.clone(linesep="\n")),
    )
