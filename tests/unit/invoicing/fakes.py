"""Fakes of the invoicing core's ports, for use-case tests without a database or broker
(cosmicpython's FakeUnitOfWork is the model): an in-memory store, a unit of work that records what
it publishes, transactions over one shared store, and a payment provider that records its calls.
The ledger is the ledger library's own in-memory one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from adledger_auth.callers import Caller
from adledger_auth.roles import Role
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
from adledger_invoicing.ports.payments import PaymentProviderUnavailableError
from adledger_libs.events import Message


@dataclass
class FakeStore:
    """Implements `ports.store.InvoicingStore` in memory (no transactions: writes stay)."""

    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    owners: dict[str, Owner] = field(default_factory=dict)
    balances: dict[str, Balance] = field(default_factory=dict)
    finance_managers_in: set[str] = field(default_factory=set)
    invoices_by_id: dict[str, Invoice] = field(default_factory=dict)
    collection_requested_at: dict[str, datetime] = field(default_factory=dict)
    notifications: dict[str, tuple[PaymentNotification, str, datetime]] = field(default_factory=dict)
    funding_sources: dict[str, FundingSource] = field(default_factory=dict)
    charges: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    closed_days: set[date] = field(default_factory=set)
    closed_months: set[date] = field(default_factory=set)
    monthly: dict[tuple[str, date, str], MonthlySpend] = field(default_factory=dict)
    numbers: int = 0

    async def set_subscription(
        self, owner_id: str, status: SubscriptionStatus, billing_email: str | None, changed_by: str, now: datetime
    ) -> Subscription:
        before = self.subscriptions.get(owner_id)
        email = billing_email if billing_email is not None else before.billing_email if before else None
        self.subscriptions[owner_id] = Subscription(owner_id, status, email, now)
        return self.subscriptions[owner_id]

    async def subscription(self, owner_id: str) -> Subscription | None:
        return self.subscriptions.get(owner_id)

    async def add_owner(self, owner: Owner, opened_at: datetime) -> None:
        self.owners.setdefault(owner.owner_id, owner)

    async def owner(self, owner_id: str) -> Owner | None:
        return self.owners.get(owner_id)

    async def owners_in(self, business_center_ids: Sequence[str]) -> list[str]:
        return sorted(
            owner.owner_id for owner in self.owners.values() if owner.business_center_id in business_center_ids
        )

    async def keep_newest_balances(self, balances: Sequence[Balance]) -> None:
        for item in balances:
            before = self.balances.get(item.owner_id)
            if before is None or before.version < item.version:
                self.balances[item.owner_id] = item

    async def balance(self, owner_id: str) -> Balance | None:
        return self.balances.get(owner_id)

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        return business_center_id in self.finance_managers_in

    async def next_invoice_number(self) -> int:
        self.numbers += 1
        return self.numbers

    async def add_invoice(self, invoice: Invoice) -> bool:
        if invoice.id in self.invoices_by_id:
            return False
        self.invoices_by_id[invoice.id] = invoice
        return True

    async def save_invoice(self, invoice: Invoice, now: datetime) -> None:
        self.invoices_by_id[invoice.id] = invoice

    async def invoice(self, invoice_id: str, *, for_update: bool = False) -> Invoice | None:
        return self.invoices_by_id.get(invoice_id)

    async def invoices(
        self,
        *,
        payer_ids: Sequence[str] | None,
        statuses: Sequence[str] | None = None,
        purposes: Sequence[str] | None = None,
        limit: int = 200,
    ) -> list[Invoice]:
        found = [
            invoice
            for invoice in self.invoices_by_id.values()
            if (payer_ids is None or invoice.payer_id in payer_ids)
            and (statuses is None or invoice.status.value in statuses)
            and (purposes is None or invoice.purpose.value in purposes)
        ]
        return sorted(found, key=lambda invoice: -invoice.number)[:limit]

    async def monthly_invoice_id(self, ad_account_id: str, month: date) -> str | None:
        return next(
            (
                invoice.id
                for invoice in self.invoices_by_id.values()
                if invoice.purpose.value == "monthly_spend"
                and invoice.payer_id == ad_account_id
                and invoice.period_start == month
            ),
            None,
        )

    async def open_day_close_invoices_micros(self, funding_source_id: str) -> int:
        return sum(
            invoice.amount_micros
            for invoice in self.invoices_by_id.values()
            if invoice.payer_id == funding_source_id
            and invoice.purpose.value == "funding_source_day_close"
            and invoice.status.value in ("draft", "open", "uncollectible")
        )

    async def claim_collections(self, now: datetime, *, retry_before: datetime, limit: int = 100) -> list[Invoice]:
        claimed = []
        for invoice in sorted(self.invoices_by_id.values(), key=lambda item: (item.issued_at, item.id)):
            requested = self.collection_requested_at.get(invoice.id)
            if (
                invoice.automatic_collection
                and invoice.status.value == "open"
                and (requested is None or requested < retry_before)
            ):
                self.collection_requested_at[invoice.id] = now
                claimed.append(invoice)
        return claimed[:limit]

    async def release_collection(self, invoice_id: str) -> None:
        self.collection_requested_at.pop(invoice_id, None)

    async def add_notification(self, notification: PaymentNotification, now: datetime) -> bool:
        if notification.provider_event_id in self.notifications:
            return False
        self.notifications[notification.provider_event_id] = (notification, "pending", now)
        return True

    async def set_notification_effect(self, provider_event_id: str, effect: str) -> None:
        notification, _, received = self.notifications[provider_event_id]
        self.notifications[provider_event_id] = (notification, effect, received)

    async def payment_succeeded_before(self, payment_id: str, except_event_id: str) -> bool:
        return any(
            item.payment_id == payment_id and item.outcome.value == "succeeded" and event_id != except_event_id
            for event_id, (item, _, _) in self.notifications.items()
        )

    async def notifications_of(self, invoice_id: str) -> list[RecordedNotification]:
        return [
            RecordedNotification(event_id, item.payment_id, item.outcome.value, effect, received)
            for event_id, (item, effect, received) in self.notifications.items()
            if item.invoice_id == invoice_id
        ]

    async def add_funding_source(self, source: FundingSource) -> bool:
        if source.id in self.funding_sources:
            return False
        self.funding_sources[source.id] = source
        return True

    async def funding_source(self, funding_source_id: str, *, for_update: bool = False) -> FundingSource | None:
        return self.funding_sources.get(funding_source_id)

    async def prepaid_sources_created_before(self, moment: datetime) -> list[FundingSource]:
        return [
            source
            for source in self.funding_sources.values()
            if source.kind == "prepaid_invoice" and source.created_at < moment
        ]

    async def first_funding_source_day(self) -> date | None:
        return min((source.created_at.date() for source in self.funding_sources.values()), default=None)

    async def add_charge(
        self, charge_id: str, funding_source_id: str, amount_micros: int, description: str, now: datetime
    ) -> bool:
        if charge_id in self.charges:
            return False
        self.charges[charge_id] = (funding_source_id, None)
        return True

    async def set_charge_card_invoice(self, charge_id: str, invoice_id: str) -> None:
        self.charges[charge_id] = (self.charges[charge_id][0], invoice_id)

    async def lock_day_closes(self) -> None:
        return None

    async def last_closed_day(self) -> date | None:
        return max(self.closed_days, default=None)

    async def close_day(self, day: date, now: datetime) -> None:
        self.closed_days.add(day)

    async def lock_month_closes(self) -> None:
        return None

    async def last_closed_month(self) -> date | None:
        return max(self.closed_months, default=None)

    async def first_spend_month(self) -> date | None:
        return min((month for _, month, _ in self.monthly), default=None)

    async def close_month(self, month: date, now: datetime) -> None:
        self.closed_months.add(month)

    async def add_monthly_spend(self, spends: Sequence[MonthlySpend]) -> None:
        for spend in spends:
            key = (spend.ad_account_id, spend.month, spend.campaign_id)
            before = self.monthly.get(key)
            self.monthly[key] = (
                spend
                if before is None
                else replace(
                    before,
                    amount_micros=before.amount_micros + spend.amount_micros,
                    event_count=before.event_count + spend.event_count,
                )
            )

    async def monthly_spend_of(self, month: date) -> list[MonthlySpend]:
        return [
            spend
            for key, spend in sorted(self.monthly.items())
            if key[1] == month
            and (owner := self.owners.get(spend.ad_account_id)) is not None
            and owner.billing_option == "monthly_invoicing"
        ]


@dataclass
class FakeWork:
    """Implements `ports.unit_of_work.InvoicingWork`: the store, and the events it was asked to publish."""

    store: FakeStore
    published: list[tuple[Message, str, str | None]] = field(default_factory=list)
    ledger_session: Any = None

    def publish(self, message: Message, *, topic: str, key: str | None) -> object:
        self.published.append((message, topic, key))
        return None

    def of_type(self, kind: type[Message]) -> list[Any]:
        return [message for message, _, _ in self.published if isinstance(message, kind)]


@dataclass
class FakeTransactions:
    """Implements `ports.unit_of_work.Transactions`: every transaction sees the one store."""

    store: FakeStore
    works: list[FakeWork] = field(default_factory=list)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[FakeWork]:
        work = FakeWork(self.store)
        self.works.append(work)
        yield work


@dataclass
class RecordingProvider:
    """Implements `ports.payments.PaymentProvider`: records each request; down while `down`."""

    asked: list[str] = field(default_factory=list)
    down: bool = False

    async def collect(self, invoice: Invoice) -> None:
        self.asked.append(invoice.id)
        if self.down:
            raise PaymentProviderUnavailableError("the provider is down")


def person(user_id: str = "ann", **roles: Role) -> Caller:
    """A signed-in person with a role per Business Center: `person("ann", bc_1=Role.ADMIN)`."""
    return Caller(
        user_id=user_id,
        kind="person",
        platform_operator=False,
        via="session",
        credential_id=f"session-{user_id}",
        roles_by_business_center={center: frozenset({role}) for center, role in roles.items()},
    )


def integration(
    user_id: str, *scopes: str, platform_operator: bool = False, roles: dict[str, Role] | None = None
) -> Caller:
    """A caller with a scoped API key."""
    return Caller(
        user_id=user_id,
        kind="integration",
        platform_operator=platform_operator,
        via="api_key",
        credential_id=f"key-{user_id}",
        scopes=frozenset(scopes),
        roles_by_business_center={center: frozenset({role}) for center, role in (roles or {}).items()},
    )


OPERATOR = Caller(
    user_id="platform", kind="person", platform_operator=True, via="api_key", credential_id="platform-bootstrap"
)
