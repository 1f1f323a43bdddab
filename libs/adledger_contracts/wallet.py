"""Events of the wallet (on `wallet.events.v1`) and the money that reaches it from invoicing."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier, UtcDatetime
from adledger_libs.events import Event, Message
from adledger_libs.money import CurrencyCode, Micros, PositiveMicros


class BusinessCenterOpened(Event):
    """A Business Center was created with its buckets (rule W1)."""

    MESSAGE_TYPE: ClassVar[str] = "BusinessCenterOpened"

    business_center_id: Identifier = Field(description="The new Business Center.")
    currency: CurrencyCode = Field(description="Its one currency (rule M2).")
    credit_limit_micros: Micros = Field(description="The credit line granted by the platform.")
    opened_at: UtcDatetime = Field(description="When it was created (UTC).")


class AdAccountOpened(Event):
    """An ad account was created under a Business Center (rule W1)."""

    MESSAGE_TYPE: ClassVar[str] = "AdAccountOpened"

    ad_account_id: Identifier = Field(description="The new ad account.")
    business_center_id: Identifier = Field(description="The Business Center that owns it.")
    type: Literal["auction", "reservation"] = Field(description="Ad account type.")
    billing_option: Literal["monthly_invoicing", "prepaid"] = Field(description="How it is billed.")
    currency: CurrencyCode = Field(description="Its currency, the Business Center's.")
    draws_on_business_center: bool = Field(description="True when ABA applies to it (rule W7 order).")
    opened_at: UtcDatetime = Field(description="When it was created (UTC).")


class CashMoved(Message):
    """One cash move of an ABA switch."""

    ad_account_id: Identifier = Field(description="The ad account.")
    amount_micros: Micros = Field(description="Cash moved from the ad account to the Business Center (negative: the other way, to clear an overspend).")


class BudgetSynced(Message):
    """One Budget Sync of an ABA switch (rule W5)."""

    ad_account_id: Identifier = Field(description="The ad account.")
    budget_kind: Literal["monthly", "daily", "custom", "unlimited"] | None = Field(description="The budget after the sync.")
    budget_micros: Micros | None = Field(description="The budget amount after the sync; null for unlimited.")
    synced: bool = Field(description="False when the account kept its set budget.")


class AutomaticBalanceAllocationEnabled(Event):
    """ABA was switched on for a Business Center, one-way (rules W2-W5), in one atomic operation."""

    MESSAGE_TYPE: ClassVar[str] = "AutomaticBalanceAllocationEnabled"

    business_center_id: Identifier = Field(description="The Business Center.")
    eligible_ad_account_ids: list[str] = Field(description="The accounts that now draw on the Business Center (W3).")
    ineligible_ad_account_ids: list[str] = Field(description="The accounts that keep manual allocation.")
    cash_moves: list[CashMoved] = Field(description="Cash moved to the Business Center (W4).")
    budget_syncs: list[BudgetSynced] = Field(description="Budgets set by Budget Sync (W5).")
    enabled_at: UtcDatetime = Field(description="When (UTC).")


class FundsAllocated(Event):
    """A Finance Manager or Admin moved cash or vouchers between a Business Center and an ad account (W6)."""

    MESSAGE_TYPE: ClassVar[str] = "FundsAllocated"

    business_center_id: Identifier = Field(description="The Business Center.")
    ad_account_id: Identifier = Field(description="The ad account.")
    bucket: Literal["cash", "vouchers"] = Field(description="What was moved.")
    direction: Literal["to_ad_account", "to_business_center"] = Field(description="Which way.")
    amount_micros: PositiveMicros = Field(description="How much.")
    currency: CurrencyCode = Field(description="Currency.")
    allocated_by_user_id: Identifier = Field(description="Who did it.")
    allocated_at: UtcDatetime = Field(description="When (UTC).")


class FundsReceived(Event):
    """Paid money reached an owner's cash (rule I1); an open overspend is covered first (S2)."""

    MESSAGE_TYPE: ClassVar[str] = "FundsReceived"

    owner_id: Identifier = Field(description="The Business Center or ad account credited.")
    invoice_id: Identifier = Field(description="The paid invoice the money came from.")
    amount_micros: PositiveMicros = Field(description="The amount paid.")
    overspend_covered_micros: Micros = Field(description="The part of it that covered an earlier overspend.")
    currency: CurrencyCode = Field(description="Currency.")
    received_at: UtcDatetime = Field(description="When it was applied (UTC).")


class PrepaymentThresholdCrossed(Event):
    """The virtual balance fell below the prepayment threshold (rule W12); invoicing acts on it."""

    MESSAGE_TYPE: ClassVar[str] = "PrepaymentThresholdCrossed"

    owner_id: Identifier = Field(description="The Business Center or ad account.")
    currency: CurrencyCode = Field(description="Currency.")
    virtual_micros: Micros = Field(description="The virtual balance after the change.")
    threshold_micros: Micros = Field(description="The threshold it fell below.")
    last_payment_micros: Micros = Field(description="The last payment received, base of the default threshold.")
    crossed_at: UtcDatetime = Field(description="When (UTC).")


class InvoicePaid(Event):
    """An invoice was paid (published by invoicing on `invoicing.events.v1`); the wallet credits it once."""

    MESSAGE_TYPE: ClassVar[str] = "InvoicePaid"

    invoice_id: Identifier = Field(description="The invoice.")
    owner_id: Identifier = Field(description="Whose balance it funds: a Business Center or an ad account.")
    amount_micros: PositiveMicros = Field(description="The amount paid.")
    currency: CurrencyCode = Field(description="Currency; must equal the owner's (M2).")
    purpose: str = Field(default="top_up", description="top_up, prepayment, activation_shortfall, …")
    paid_at: UtcDatetime = Field(description="When the provider confirmed the payment (UTC).")
