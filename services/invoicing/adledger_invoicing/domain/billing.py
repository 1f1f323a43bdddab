"""The invoicing service's records besides invoices, as plain values (no I/O): who may be billed
(owners and their subscriptions, I4), the balances the wallet publishes (I2), funding sources (I6),
provider notifications (I5) and posted spend (I7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from adledger_invoicing.domain.invoices import PaymentOutcome

SubscriptionStatus = Literal["active", "inactive"]
OwnerKind = Literal["business_center", "ad_account"]
FundingSourceKind = Literal["prepaid_invoice", "credit_card"]


@dataclass(frozen=True)
class Subscription:
    """I4: only an owner with an active subscription can hold a credit balance."""

    owner_id: str
    status: SubscriptionStatus
    billing_email: str | None
    changed_at: datetime


@dataclass(frozen=True)
class Owner:
    """A Business Center or an ad account, as `wallet.events.v1` opened it. An ad account belongs
    to its Business Center, whose roles (W9) decide who may bill for it; a Business Center is its own."""

    owner_id: str
    owner_kind: OwnerKind
    business_center_id: str
    currency: str
    billing_option: str | None


@dataclass(frozen=True)
class Balance:
    """An owner's balance as the wallet last published it on `balances.v1` (newest version wins)."""

    owner_id: str
    owner_kind: str
    currency: str
    real_micros: int
    virtual_micros: int
    available_micros: int
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class FundingSource:
    id: str
    name: str
    kind: FundingSourceKind
    currency: str
    low_balance_threshold_micros: int
    low_balance_contacts: tuple[str, ...]
    accounts_payable_contact: str | None
    created_at: datetime


@dataclass(frozen=True)
class PaymentNotification:
    """A provider's notification, verified (signature and time) and parsed at the edge."""

    provider_event_id: str
    payment_id: str
    invoice_id: str
    outcome: PaymentOutcome
    amount_micros: int
    currency: str


@dataclass(frozen=True)
class RecordedNotification:
    """A notification as recorded, with what it did (an `Effect`, `duplicate` or `unknown_invoice`)."""

    provider_event_id: str
    payment_id: str
    outcome: str
    effect: str
    received_at: datetime


@dataclass(frozen=True)
class MonthlySpend:
    """I7: the spend posted for one ad account and campaign in one calendar month."""

    ad_account_id: str
    month: date
    campaign_id: str
    currency: str
    amount_micros: int
    event_count: int
