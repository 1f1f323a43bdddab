"""Events of the wallet (on `wallet.events.v1`) and the money that reaches it from invoicing."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier, Name, UtcDatetime
from adledger_libs.events import Command, Event, Message
from adledger_libs.money import CurrencyCode, Micros, PositiveMicros


class BusinessCenterOpened(Event):
    """A Business Center was created with its buckets (rule W1)."""

    MESSAGE_TYPE: ClassVar[str] = "BusinessCenterOpened"

    business_center_id: Identifier = Field(description="The new Business Center.")
    currency: CurrencyCode = Field(description="Its one currency (rule M2).")
    credit_limit_micros: Micros = Field(description="The credit line granted by the platform.")
    opened_at: UtcDatetime = Field(description="When it was created (UTC).")
    admin_user_id: Identifier | None = Field(
        default=None, description="Its first Admin (W9); the identity service gives them the role."
    )


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
    eligible_ad_account_ids: list[Identifier] = Field(description="The accounts that now draw on the Business Center (W3).")
    ineligible_ad_account_ids: list[Identifier] = Field(description="The accounts that keep manual allocation.")
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
    #: The wallet credits a paid invoice: only the invoicing service may say one was paid (issue 12).
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset({"invoicing"})

    invoice_id: Identifier = Field(description="The invoice.")
    owner_id: Identifier = Field(description="Whose balance it funds: a Business Center or an ad account.")
    amount_micros: PositiveMicros = Field(description="The amount paid.")
    currency: CurrencyCode = Field(description="Currency; must equal the owner's (M2).")
    purpose: Name = Field(default="top_up", description="top_up, prepayment, activation_shortfall, …")
    paid_at: UtcDatetime = Field(description="When the provider confirmed the payment (UTC).")


# Commands other services send the wallet on `wallet.commands.v1`, and the wallet's answers.


class PlaceHold(Command):
    """Hold money of an owner's cash for a later post or void (rule M4): campaign booking (C1), escrow (O1)."""

    MESSAGE_TYPE: ClassVar[str] = "PlaceHold"
    #: Money held or paid out on another service\'s say: only these may ask (issue 12).
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset({"campaign", "order_escrow"})

    hold_id: Identifier = Field(description="The hold's id; also the ledger's pending transfer id.")
    owner_id: Identifier = Field(description="Whose cash is held: a Business Center or an ad account.")
    amount_micros: PositiveMicros = Field(description="How much to hold.")
    currency: CurrencyCode = Field(description="Must be the owner's currency (M2).")
    purpose: Literal["campaign_booking", "order_escrow"] = Field(description="What the hold is for.")
    payee_owner_id: Identifier | None = Field(
        default=None,
        description="Where a post goes: this owner's cash (an escrowed order's seller, O1). "
        "Null: the platform (campaign spend) for campaign_booking, escrow for order_escrow.",
    )
    allow_partial: bool = Field(default=False, description="Hold what is available when it is less than the amount (C1).")
    expires_at: UtcDatetime | None = Field(default=None, description="When the hold lapses by itself (UTC), if ever.")
    requested_by: Identifier = Field(description="The service that asks, for routing the answer.")


class ResolveHold(Command):
    """Post a hold (fully or partly, the rest is released) or void it (rule M4)."""

    MESSAGE_TYPE: ClassVar[str] = "ResolveHold"
    #: Money held or paid out on another service\'s say: only these may ask (issue 12).
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset({"campaign", "order_escrow"})

    hold_id: Identifier = Field(description="The hold to resolve.")
    action: Literal["post", "void"] = Field(description="Post it, or give it back.")
    amount_micros: Micros | None = Field(default=None, ge=0, description="For a partial post; null posts all.")
    requested_by: Identifier = Field(description="The service that asks.")


class ResizeHold(Command):
    """Release part of a hold at once and keep the rest held (rule C2), atomically: the hold is voided
    and a new hold for `amount_micros` is placed in one linked ledger chain, so no spend can take the
    money in between. Answered with `HoldResolved` (void) for the old hold and `HoldPlaced` for the new."""

    MESSAGE_TYPE: ClassVar[str] = "ResizeHold"
    #: Money held or paid out on another service\'s say: only these may ask (issue 12).
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset({"campaign", "order_escrow"})

    hold_id: Identifier = Field(description="The hold to shrink.")
    new_hold_id: Identifier = Field(description="The id of the smaller hold that replaces it (idempotent).")
    amount_micros: PositiveMicros = Field(description="What stays held; less than the hold's amount.")
    requested_by: Identifier = Field(description="The service that asks.")


class RequestPayout(Command):
    """Pay a payee from an owner's cash, subject to the payout gate (rule W14)."""

    MESSAGE_TYPE: ClassVar[str] = "RequestPayout"
    #: Money held or paid out on another service\'s say: only these may ask (issue 12).
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset({"campaign", "order_escrow"})

    payout_id: Identifier = Field(description="The payout's id (idempotent).")
    payer_owner_id: Identifier = Field(description="The Business Center or ad account that pays.")
    payee_owner_id: Identifier = Field(description="The Business Center or ad account that receives.")
    amount_micros: PositiveMicros = Field(description="How much.")
    currency: CurrencyCode = Field(description="Currency.")
    requested_by: Identifier = Field(description="The service that asks.")


class HoldPlaced(Event):
    """The wallet placed a hold (possibly partial, when allowed)."""

    MESSAGE_TYPE: ClassVar[str] = "HoldPlaced"

    hold_id: Identifier = Field(description="The hold.")
    owner_id: Identifier = Field(description="Whose cash is held.")
    requested_micros: PositiveMicros = Field(description="What was asked.")
    held_micros: Micros = Field(description="What is held (less than asked only with allow_partial).")
    currency: CurrencyCode = Field(description="Currency.")
    requested_by: Identifier = Field(description="The service that asked.")
    placed_at: UtcDatetime = Field(description="When (UTC).")


class HoldRejected(Event):
    """The wallet could not place or resolve a hold; nothing changed."""

    MESSAGE_TYPE: ClassVar[str] = "HoldRejected"

    hold_id: Identifier = Field(description="The hold.")
    error: Name = Field(description="A stable code: insufficient_funds, unknown_owner, currency_mismatch, already_resolved, …")
    reason: Name = Field(description="For people.")
    requested_by: Identifier = Field(description="The service that asked.")


class HoldResolved(Event):
    """A hold was posted (fully or partly), voided, or expired at its deadline."""

    MESSAGE_TYPE: ClassVar[str] = "HoldResolved"

    hold_id: Identifier = Field(description="The hold.")
    action: Literal["post", "void", "expire"] = Field(description="What was done.")
    posted_micros: Micros = Field(description="What was posted (0 for a void); the rest went back.")
    requested_by: Identifier = Field(description="The service that asked.")
    resolved_at: UtcDatetime = Field(description="When (UTC).")


class PayoutSettled(Event):
    """A payout's state after a request or a payment: paid, or outstanding until funds arrive (W14)."""

    MESSAGE_TYPE: ClassVar[str] = "PayoutSettled"

    payout_id: Identifier = Field(description="The payout.")
    payer_owner_id: Identifier = Field(description="Who pays.")
    status: Literal["paid", "outstanding"] = Field(description="Paid now, or waiting for the payer's real balance.")
