"""The invoicing service's store, as a protocol: the core names no database.

One store is one transaction's view (a unit of work's); every write is part of that transaction
and is undone with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

from adledger_libs.refusals import Refusal

from adledger_invoicing.domain.billing import (
    Balance,
    FundingSource,
    MonthlySpend,
    Owner,
    PaymentNotification,
    RecordedNotification,
    Subscription,
    SubscriptionStatus,
)
from adledger_invoicing.domain.invoices import Invoice


class UnknownInvoiceError(Refusal, LookupError):
    """No such invoice, or none the caller may see: the two are answered alike (a 404)."""

    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"no invoice {invoice_id!r}")


class UnknownFundingSourceError(Refusal, LookupError):
    def __init__(self, funding_source_id: str) -> None:
        super().__init__(f"no funding source {funding_source_id!r}")


class UnknownOwnerError(Refusal, LookupError):
    """No such Business Center or ad account, or one in a Business Center the caller holds no role
    in: the two are answered alike (a 404), so a caller cannot learn what exists elsewhere."""

    def __init__(self, owner_id: str) -> None:
        super().__init__(f"no business center or ad account {owner_id!r}")


class InvoicingStore(Protocol):
    # Who may be billed (I4) and what the wallet tells ------------------------------------------

    async def set_subscription(
        self, owner_id: str, status: SubscriptionStatus, billing_email: str | None, changed_by: str, now: datetime
    ) -> Subscription:
        """Set an owner's subscription; a null billing e-mail keeps the one before."""
        ...

    async def subscription(self, owner_id: str) -> Subscription | None: ...

    async def add_owner(self, owner: Owner, opened_at: datetime) -> None:
        """Keep an owner opened on the wallet's topic (the first opening wins)."""
        ...

    async def owner(self, owner_id: str) -> Owner | None: ...

    async def owners_in(self, business_center_ids: Sequence[str]) -> list[str]:
        """The ids of the Business Centers given and of their ad accounts, known to this service."""
        ...

    async def keep_newest_balances(self, balances: Sequence[Balance]) -> None:
        """Store each balance unless a newer version of the owner's is stored already."""
        ...

    async def balance(self, owner_id: str) -> Balance | None: ...

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        """W9: whether the Business Center has a Finance Manager (from the identity's roles)."""
        ...

    # Invoices --------------------------------------------------------------------------------

    async def next_invoice_number(self) -> int: ...

    async def add_invoice(self, invoice: Invoice) -> bool:
        """Store a new invoice with its lines; False when its id, or one of the one-at-a-time rules
        (one open prepayment per owner, W12; one monthly invoice per account and month, I7; one
        day-close invoice per source and day, I6), says it exists already."""
        ...

    async def save_invoice(self, invoice: Invoice, now: datetime) -> None:
        """Store a changed status (and payment) of an invoice."""
        ...

    async def invoice(self, invoice_id: str, *, for_update: bool = False) -> Invoice | None:
        """An invoice; `for_update` locks it until the transaction ends."""
        ...

    async def invoices(
        self,
        *,
        payer_ids: Sequence[str] | None,
        statuses: Sequence[str] | None = None,
        purposes: Sequence[str] | None = None,
        limit: int = 200,
    ) -> list[Invoice]:
        """Invoices newest first; None means any payer (or status, or purpose)."""
        ...

    async def monthly_invoice_id(self, ad_account_id: str, month: date) -> str | None: ...

    async def open_day_close_invoices_micros(self, funding_source_id: str) -> int:
        """What the day-close invoices of a source still unpaid (draft, open, uncollectible) ask for."""
        ...

    async def claim_collections(self, now: datetime, *, retry_before: datetime, limit: int = 100) -> list[Invoice]:
        """Claim the open automatically collected invoices not asked of the provider yet (or asked
        before `retry_before` and still open): mark them asked for at `now` and answer them. Rows
        another transaction is claiming are skipped, not waited for, so two instances claiming at
        once get different invoices; the mark is durable once this transaction commits."""
        ...

    async def release_collection(self, invoice_id: str) -> None:
        """Forget that the provider was asked (it did not answer): the next round asks again."""
        ...

    # Provider notifications (I5) ---------------------------------------------------------------

    async def add_notification(self, notification: PaymentNotification, now: datetime) -> bool:
        """Record a notification by the provider's event id; False when it was recorded before."""
        ...

    async def set_notification_effect(self, provider_event_id: str, effect: str) -> None: ...

    async def payment_succeeded_before(self, payment_id: str, except_event_id: str) -> bool: ...

    async def notifications_of(self, invoice_id: str) -> list[RecordedNotification]: ...

    # Funding sources (I6) ----------------------------------------------------------------------

    async def add_funding_source(self, source: FundingSource) -> bool:
        """False when a source with its id exists already."""
        ...

    async def funding_source(self, funding_source_id: str, *, for_update: bool = False) -> FundingSource | None: ...

    async def prepaid_sources_created_before(self, moment: datetime) -> list[FundingSource]:
        """The prepaid sources created before `moment`, locked until the transaction ends."""
        ...

    async def first_funding_source_day(self) -> date | None: ...

    async def add_charge(
        self, charge_id: str, funding_source_id: str, amount_micros: int, description: str, now: datetime
    ) -> bool:
        """False when the charge id was used before."""
        ...

    async def set_charge_card_invoice(self, charge_id: str, invoice_id: str) -> None: ...

    # Closes (I6, I7, T1) and posted spend ------------------------------------------------------

    async def lock_day_closes(self) -> None:
        """Hold the day-close lock until the transaction ends (one closer at a time)."""
        ...

    async def last_closed_day(self) -> date | None: ...

    async def close_day(self, day: date, now: datetime) -> None: ...

    async def lock_month_closes(self) -> None:
        """Hold the month-close lock until the transaction ends (one closer at a time)."""
        ...

    async def last_closed_month(self) -> date | None: ...

    async def first_spend_month(self) -> date | None: ...

    async def close_month(self, month: date, now: datetime) -> None: ...

    async def add_monthly_spend(self, spends: Sequence[MonthlySpend]) -> None:
        """Add to the sums per ad account, month and campaign."""
        ...

    async def monthly_spend_of(self, month: date) -> list[MonthlySpend]:
        """The month's spend of the ad accounts on monthly invoicing, by account and campaign."""
        ...
