"""The invoicing service's edges without a server: the provider's notification parser, the
invoice document, the checked-in OpenAPI document (I5, I8, M1), the webhook secret's rotation and
the production API without the local provider (issue 12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from adledger_invoicing.adapters.document import render_html
from adledger_invoicing.adapters.http import InvalidNotification, parse_notification
from adledger_invoicing.config import Settings
from adledger_invoicing.domain import invoices as domain
from adledger_invoicing.domain.invoices import InvoiceStatus, Line, PaymentOutcome, Purpose
from adledger_invoicing.domain.signatures import SIGNATURE_HEADER, sign
from adledger_invoicing.inject import openapi_document, wire
from adledger_libs.clock import ManualClock

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "openapi"
NOW = datetime(2026, 11, 21, 9, tzinfo=UTC)


def test_i5_a_provider_notification_is_parsed_strictly_and_unknown_types_are_ignored() -> None:
    body = {"id": "evt_1", "type": "payment.failed", "payment_id": "pay_1", "invoice_id": "inv_1", "amount_micros": 5, "currency": "USD"}
    parsed = parse_notification(json.dumps(body).encode())
    assert parsed is not None and (parsed.outcome, parsed.amount_micros, parsed.provider_event_id) == (PaymentOutcome.FAILED, 5, "evt_1")
    assert parse_notification(json.dumps({**body, "type": "charge.refunded"}).encode()) is None
    for broken in (
        b"{", json.dumps({**body, "amount_micros": 5.0}).encode(),
        json.dumps({k: v for k, v in body.items() if k != "payment_id"}).encode(),
        json.dumps({**body, "amount_micros": 2**63}).encode(), json.dumps({**body, "invoice_id": "inv\u0000"}).encode(),
        json.dumps({**body, "payment_id": "p" * 129}).encode(), json.dumps({**body, "currency": "usd"}).encode(),
        json.dumps({**body, "amount_micros": "5"}).encode(), b"[" * 60_000, b"\xff\xfe", json.dumps([body]).encode(),
    ):
        with pytest.raises(InvalidNotification):
            parse_notification(broken)


def test_the_invoice_document_shows_number_lines_and_exact_totals_and_escapes_text() -> None:
    invoice = domain.new_invoice(
        invoice_id="inv-1", number=42, payer_id="bc-<1>", payer_kind="owner", purpose=Purpose.MONTHLY_SPEND, currency="USD",
        lines=[Line("Campaign <b>A</b>", 1_234_500_000), Line("Adjustment", -500_000)], now=NOW,
    )
    page = render_html(invoice)
    assert "INV-000042" in page and "USD 1,234.50" in page and "USD -0.50" in page and "USD 1,234.00" in page
    assert "<b>A</b>" not in page and "&lt;b&gt;A&lt;/b&gt;" in page and "bc-&lt;1&gt;" in page
    assert "2026-12-05" in page, "due 14 days after issue"
    paid = domain.transition(invoice, InvoiceStatus.PAID, paid_at=NOW, payment_id="pay_9")
    assert "Paid on 2026-11-21" in render_html(paid)


def test_invoicing_openapi_is_checked_in_and_current_and_commands_take_idempotency_keys() -> None:
    text = openapi_document()
    assert (SCHEMAS / "invoicing.json").read_text() == text, "run `make schemas` and commit the result"
    document = json.loads(text)
    local_provider = [path for path in document["paths"] if path.startswith("/v1/local-provider")]
    assert local_provider == [], "the checked-in document is production's: no local provider"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path == "/v1/payments/webhook":
                assert "security" not in operation, "the provider signs instead of a bearer token"
                continue
            assert operation.get("security") == [{"bearer": []}], f"{method} {path}"
            if method in {"post", "put", "patch", "delete"}:
                assert "Idempotency-Key" in {parameter["name"] for parameter in operation["parameters"]}, f"{method} {path}"


async def test_issue_12_the_webhook_secret_rotates_and_the_old_one_is_refused_after_the_change() -> None:
    old, new = "old-webhook-secret-" + "o" * 20, "new-webhook-secret-" + "n" * 20
    # An event type the service does not act on: the answer shows the signature passed, with no database.
    body = json.dumps({"id": "evt_rotation", "type": "charge.refunded"}).encode()
    stamp = int(NOW.timestamp())
    for current, before in ((old, None), (new, old)):
        app = wire(Settings(profile="local", payment_webhook_secret=current), ManualClock(NOW)).runtime.http_app()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://invoicing") as client:
            signed = {SIGNATURE_HEADER: sign(current, stamp, body)}
            accepted = await client.post("/v1/payments/webhook", content=body, headers=signed)
            assert accepted.json() == {"received": True, "effect": "ignored"}
            if before is not None:
                stale = {SIGNATURE_HEADER: sign(before, stamp, body)}
                refused = await client.post("/v1/payments/webhook", content=body, headers=stale)
                assert (refused.status_code, refused.json()["error"]) == (401, "signature_invalid")


def test_issue_12_the_production_api_has_no_local_provider_route() -> None:
    strong = "s" * 40
    production = wire(Settings(profile="production", payment_webhook_secret=strong)).runtime.http_app()
    local = wire(Settings(profile="local")).runtime.http_app()

    def paths(app: object) -> set[str]:
        return set(app.openapi()["paths"])

    assert "/v1/local-provider/invoices/{invoice_id}/payments" in paths(local)
    assert not any(path.startswith("/v1/local-provider") for path in paths(production))
