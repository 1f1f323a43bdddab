"""The payment provider, as the core sees it."""

from __future__ import annotations

from typing import Protocol

from adledger_invoicing.domain.invoices import Invoice


class PaymentProviderUnavailableError(Exception):
    """The provider did not answer; nothing was charged that the webhook will not report."""


class PaymentProvider(Protocol):
    """A card processor or bank (I5). Its answers come back as signed webhooks, never as return
    values, so a payment is credited on one path only, whatever the provider does."""

    async def collect(self, invoice: Invoice) -> None:
        """Charge the payment method on file for an automatically collected invoice (a card
        payment per charge of a credit-card funding source, I6). Idempotent by invoice id: asked
        twice for one invoice, the provider charges once.

        Raises:
            PaymentProviderUnavailableError: the provider could not be reached; try again later.
        """
        ...
