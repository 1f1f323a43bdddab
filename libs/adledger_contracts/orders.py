"""Events of the order-escrow service on `orders.events.v1` (rules O1-O6).

Every change of an order is one `OrderStatusChanged` with the order's new status; the e-mail of
rule O4 is asked for with `adledger_contracts.notifications.EmailRequested` on this topic, whose
rendering lives in one place (the invoicing service's e-mail adapter), so order_escrow never holds
a template's text.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Count, Identifier, Text, UtcDatetime
from adledger_libs.events import Event
from adledger_libs.money import CurrencyCode, Micros, PositiveMicros

OrderStatus = Literal[
    "awaiting_funds",
    "rejected_insufficient_funds",
    "hold_rejected",
    "awaiting_seller",
    "declined",
    "expired",
    "accepted",
    "ready",
    "complete",
    "disputed",
    "released",
    "refunded",
    "split",
]


class OrderPlaced(Event):
    """A buyer ordered from a seller (a channel); the price is being held in escrow (rule O1)."""

    MESSAGE_TYPE: ClassVar[str] = "OrderPlaced"

    order_id: Identifier = Field(description="The order; also the id of its escrow hold in the wallet.")
    order_number: Count = Field(description="The order's number for people (e-mails, support).")
    buyer_user_id: Identifier = Field(description="The user who placed the order.")
    buyer_owner_id: Identifier = Field(description="The Business Center or ad account whose cash is held.")
    channel_id: Identifier = Field(description="The seller's channel.")
    seller_owner_id: Identifier = Field(description="The Business Center or ad account the seller is paid to.")
    price_micros: PositiveMicros = Field(description="The price held in escrow.")
    currency: CurrencyCode = Field(description="Currency of the price (M2).")
    reordered_from_order_id: Identifier | None = Field(default=None, description="The past order this one copies, if a reorder.")
    placed_at: UtcDatetime = Field(description="When the order was placed (UTC).")


class OrderStatusChanged(Event):
    """An order moved to a new status (rules O1-O5); money effects follow through the wallet."""

    MESSAGE_TYPE: ClassVar[str] = "OrderStatusChanged"

    order_id: Identifier = Field(description="The order.")
    order_number: Count = Field(description="The order's number for people.")
    previous_status: OrderStatus = Field(description="The status before the change.")
    status: OrderStatus = Field(description="The status after the change.")
    changed_by: Literal["buyer", "seller", "admin", "wallet", "deadline"] = Field(
        description="Who caused it: an order party, the wallet's answer, or a passed deadline (O2, O5)."
    )
    reason: Text | None = Field(default=None, description="A decline's or dispute's reason, or the wallet's rejection code.")
    seller_micros: Micros | None = Field(default=None, description="On a release, refund or split: what goes to the seller.")
    buyer_micros: Micros | None = Field(default=None, description="On a release, refund or split: what goes back to the buyer.")
    changed_at: UtcDatetime = Field(description="When (UTC).")
