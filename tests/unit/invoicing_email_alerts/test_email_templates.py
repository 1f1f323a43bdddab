"""The e-mail adapter's templates and message (rules I8, O4), pure: no broker, no database."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.policy import default as default_policy
from pathlib import Path
from typing import get_args

import pytest
from adledger_contracts.notifications import TEMPLATE_FIELDS, EmailRequested, EmailTemplate
from adledger_invoicing.email.message import compose, file_name_for
from adledger_invoicing.email.sinks import FileSink
from adledger_invoicing.email.templates import TEMPLATES, TemplateError, check_fields, render

T0 = datetime(2026, 11, 21, 9, tzinfo=UTC)


def _request(template: str, fields: dict[str, str], **extra: object) -> EmailRequested:
    values: dict[str, object] = {
        "email_id": f"{template}:x-1",
        "template": template,
        "recipient_user_id": "user-1",
        "subject_id": "x-1",
        "fields": fields,
        "requested_at": T0,
    }
    values.update(extra)
    return EmailRequested.model_validate(values)


def _parts(content: bytes) -> tuple[email.message.EmailMessage, str, str]:
    parsed = email.message_from_bytes(content, policy=default_policy)
    assert isinstance(parsed, email.message.EmailMessage)
    plain = parsed.get_body(("plain",))
    rich = parsed.get_body(("html",))
    assert plain is not None and rich is not None
    return parsed, plain.get_content(), rich.get_content()


def test_i8_every_template_of_the_contract_has_a_text_and_its_fields() -> None:
    assert set(TEMPLATES) == set(get_args(EmailTemplate)) == set(TEMPLATE_FIELDS)


@pytest.mark.parametrize("template", sorted(TEMPLATE_FIELDS))
def test_i8_every_template_renders_every_field_in_text_and_html(template: str) -> None:
    fields = {name: f"<{name}-värde>" for name in TEMPLATE_FIELDS[template]}
    rendered = render(template, fields)
    for name, value in fields.items():
        assert value in rendered.plain, (template, name)
        # HTML-escaped in the HTML body, never raw.
        assert f"&lt;{name}-värde&gt;" in rendered.html, (template, name)
        assert value not in rendered.html
    _, plain, rich = _parts(compose(_request(template, fields)).content)
    for name, value in fields.items():
        assert value in plain
        assert f"&lt;{name}-värde&gt;" in rich


@pytest.mark.parametrize("template", sorted(TEMPLATE_FIELDS))
def test_i8_a_missing_or_blank_field_is_refused(template: str) -> None:
    names = TEMPLATE_FIELDS[template]
    complete = {name: "x" for name in names}
    check_fields(template, complete)
    for name in names:
        lacking = {k: v for k, v in complete.items() if k != name}
        with pytest.raises(TemplateError, match=name):
            render(template, lacking)
        with pytest.raises(TemplateError, match=name):
            render(template, {**complete, name: "  "})


def test_i8_an_unknown_template_is_refused_and_cannot_even_be_requested() -> None:
    with pytest.raises(TemplateError, match="unknown template"):
        render("birthday", {})
    with pytest.raises(ValueError):
        _request("birthday", {})


def test_o4_order_completed_names_the_user_the_channel_and_the_order_number() -> None:
    request = _request(
        "order_completed",
        {"user_name": "Ada Lovelace", "channel_name": "Analytical Engines", "order_number": "1042"},
        email_id="order:o-9:completed",
    )
    outgoing = compose(request)
    parsed, plain, rich = _parts(outgoing.content)
    assert parsed["Subject"] == "Order #1042 is complete: release the funds to Analytical Engines"
    assert parsed["X-Adledger-Email-Id"] == "order:o-9:completed"
    assert parsed["X-Adledger-Recipient"] == "user:user-1"
    for text in (plain, rich):
        assert "Ada Lovelace" in text and "Analytical Engines" in text and "#1042" in text
    assert "release the funds" in plain


def test_i8_the_message_is_a_function_of_the_request_so_a_rewrite_is_the_same_email() -> None:
    request = _request("invoice_paid", {"invoice_number": "INV-7", "amount": "10.00 USD"})
    assert compose(request).content == compose(request).content


def test_i8_a_line_break_in_a_subject_field_does_not_add_a_header() -> None:
    outgoing = compose(_request("invoice_paid", {"invoice_number": "INV-7\nBcc: someone@example.com", "amount": "1"}))
    parsed, _, _ = _parts(outgoing.content)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Invoice INV-7 Bcc: someone@example.com is paid"


def test_i8_an_address_with_a_line_break_is_refused_not_sent() -> None:
    with pytest.raises(TemplateError):
        compose(_request("invoice_paid", {"invoice_number": "1", "amount": "1"}, recipient_address="a@b.c\nBcc: x@y.z"))


def test_i8_file_names_are_safe_and_one_per_email_id() -> None:
    assert file_name_for("order:o-1:completed") == "order:o-1:completed.eml"
    assert "/" not in file_name_for("a/../../etc/passwd")
    assert file_name_for("a/b") != file_name_for("a_b")
    long_name = file_name_for("/" * 100)
    assert len(long_name) <= 255 and long_name.startswith("sha256-")


def test_i8_the_file_sink_writes_one_file_per_email_id_atomically(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "mail")
    outgoing = compose(_request("invoice_paid", {"invoice_number": "INV-7", "amount": "10.00 USD"}))
    where = sink.send(outgoing)
    again = sink.send(outgoing)
    assert where == again == f"file:{tmp_path / 'mail' / outgoing.file_name}"
    assert sink.sent() == [tmp_path / "mail" / outgoing.file_name]
    assert (tmp_path / "mail" / outgoing.file_name).read_bytes() == outgoing.content
    assert not [path for path in (tmp_path / "mail").iterdir() if path.name.startswith(".sending-")]
