"""The local payment provider, for `make run` and tests (I5): a stand-in for a card processor.

It exists only in the local profile (issue 12: anyone who may ask it can mint money), and only a
platform operator may ask it. When asked (over HTTP, `POST /v1/local-provider/invoices/{id}/payments`)
it pays an invoice, fails
the payment, pays it twice or reports a failure after the success, by POSTing signed webhooks
(HMAC-SHA256, `Adledger-Signature`) to the service's own webhook endpoint, exactly as a real
provider would: the real signature check, the real handler, no shortcut. For a credit-card
funding source it charges the card on file (`collect`) the same way.

Payment and event ids are derived from the caller's idempotency key, so asking again with the
same key re-sends the same provider events, which the service recognises (M5).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal

import httpx
from adledger_libs.clock import Clock

from adledger_invoicing.domain.invoices import Invoice
from adledger_invoicing.domain.signatures import SIGNATURE_HEADER, sign
from adledger_invoicing.ports.payments import PaymentProviderUnavailableError

Scenario = Literal["pay", "fail", "pay_twice", "fail_after_success", "fail_then_pay"]

#: The notifications each scenario sends, in order.
SCENARIOS: dict[Scenario, tuple[str, ...]] = {
    "pay": ("succeeded",),
    "fail": ("failed",),
    "pay_twice": ("succeeded", "succeeded"),
    "fail_after_success": ("succeeded", "failed"),
    "fail_then_pay": ("failed", "succeeded"),
}


class LocalPaymentProvider:
    """Implements `ports.payments.PaymentProvider` for the local profile, and pays on request."""

    def __init__(self, *, secret: str, webhook_url: Callable[[], str], clock: Clock, timeout_s: float = 10.0) -> None:
        self._secret = secret
        self._webhook_url = webhook_url
        self._clock = clock
        self._timeout_s = timeout_s

    async def pay(self, invoice: Invoice, scenario: Scenario, idempotency_key: str) -> tuple[str, list[dict[str, Any]]]:
        """Run a scenario on `invoice`; answers the payment id and each webhook's answer."""
        payment_id = "pay_" + hashlib.sha256(f"{invoice.id}:{idempotency_key}".encode()).hexdigest()[:24]
        answers: list[dict[str, Any]] = []
        for number, outcome in enumerate(SCENARIOS[scenario], start=1):
            answers.append(await self._notify(invoice, payment_id, outcome, f"evt_{payment_id}_{number}_{outcome}"))
        return payment_id, answers

    async def collect(self, invoice: Invoice) -> None:
        """Charge the card on file: the local card always succeeds."""
        payment_id = f"card_{invoice.id}"
        answer = await self._notify(invoice, payment_id, "succeeded", f"evt_{payment_id}_succeeded")
        if answer["status_code"] >= 500:
            raise PaymentProviderUnavailableError(f"the webhook answered {answer['status_code']}")

    async def _notify(self, invoice: Invoice, payment_id: str, outcome: str, event_id: str) -> dict[str, Any]:
        body = json.dumps(
            {
                "id": event_id,
                "type": f"payment.{outcome}",
                "payment_id": payment_id,
                "invoice_id": invoice.id,
                "amount_micros": invoice.amount_micros,
                "currency": invoice.currency,
                "created": int(self._clock.now().timestamp()),
            },
            separators=(",", ":"),
        ).encode()
        headers = {SIGNATURE_HEADER: sign(self._secret, int(self._clock.now().timestamp()), body), "Content-Type": "application/json"}
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                answer = await client.post(self._webhook_url(), content=body, headers=headers)
        except httpx.TransportError as error:
            raise PaymentProviderUnavailableError(f"the webhook endpoint is not reachable: {error!r}") from error
        try:
            content = answer.json()
        except ValueError:
            content = answer.text
        return {"event_id": event_id, "outcome": outcome, "status_code": answer.status_code, "answer": content}
