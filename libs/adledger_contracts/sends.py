"""The sends service's command to the invoicing service (on `invoicing.commands.v1`) and its own
events on `sends.events.v1` (rules U1-U6, I6)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier, Name, Text, UtcDatetime, Version
from adledger_libs.events import Command, Event
from adledger_libs.money import CurrencyCode, Micros, PositiveMicros


class ChargeFundingSource(Command):
    """Charge (or, for a lower final cost, refund) a funding source (I6, U3-U6); idempotent by `charge_id`.

    A prepaid-invoice source is debited even below zero and its low-balance contacts are alerted at
    once; a credit-card source gets one card payment per charge. With `add_funds` (U3), a prepaid
    source that does not cover the charge also gets an invoice for the shortfall."""

    MESSAGE_TYPE: ClassVar[str] = "ChargeFundingSource"
    #: Money moves on it: only the sends service may ask.
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset({"sends"})

    charge_id: Identifier = Field(max_length=48, description="Chosen by the caller; the same id twice charges once.")
    funding_source_id: Identifier = Field(max_length=48, description="The funding source.")
    direction: Literal["charge", "refund"] = Field(default="charge", description="refund: give the amount back (U5).")
    amount_micros: PositiveMicros = Field(description="The amount.")
    currency: CurrencyCode = Field(description="The source's currency (M2).")
    add_funds: bool = Field(default=False, description="U3: invoice a prepaid source's shortfall.")
    description: Text = Field(min_length=1, max_length=300, description="What it is for, for people.")
    requested_by: Identifier = Field(description="The service that asks.")


SendState = Literal["awaiting_approval", "charged", "rejected", "adjusted", "fulfilled", "cancelled"]


class SendChanged(Event):
    """A send was created or changed state (U2-U5): the whole send, as a versioned snapshot."""

    MESSAGE_TYPE: ClassVar[str] = "SendChanged"

    send_id: Identifier = Field(description="The send.")
    business_center_id: Identifier = Field(description="The account (Business Center) it belongs to.")
    campaign_id: Identifier = Field(description="The send campaign.")
    sender_user_id: Identifier = Field(description="Who created it (a person, or an integration's user).")
    via: Literal["user", "integration"] = Field(description="Created in the app or by an integration (U4).")
    item_kind: Literal["egift", "item"] = Field(description="What is sent.")
    charged_to: Literal["user_balance", "funding_source"] = Field(description="What the campaign charges (U2, U3).")
    funding_source_id: Identifier | None = Field(default=None, description="The source charged, if any.")
    price_micros: PositiveMicros = Field(description="The price at creation.")
    charged_micros: Micros = Field(description="What was charged so far, adjustments included (U5).")
    currency: CurrencyCode = Field(description="Currency (M2).")
    state: SendState = Field(description="The state now.")
    previous_state: SendState | None = Field(default=None, description="The state before; null when created.")
    version: Version = Field(ge=1, description="Grows by one with each change.")
    changed_at: UtcDatetime = Field(description="When (UTC).")


class UserBalanceFunded(Event):
    """A user balance got its initial budget, a refresh or a rollover (U1, U6), charged to a funding source."""

    MESSAGE_TYPE: ClassVar[str] = "UserBalanceFunded"

    business_center_id: Identifier = Field(description="The account (Business Center).")
    user_id: Identifier = Field(description="The user.")
    reason: Literal["initial_budget", "refresh", "rollover"] = Field(description="Why.")
    period: Name = Field(description="The schedule period it is for (its start, UTC), or `initial`.")
    amount_micros: Micros = Field(description="What was added to the balance and charged to the source (0: nothing).")
    balance_after_micros: Micros = Field(description="The user balance after it.")
    currency: CurrencyCode = Field(description="Currency (M2).")
    funding_source_id: Identifier = Field(description="The source charged: the team's, or the default one.")
    charge_id: Identifier | None = Field(default=None, description="The funding-source charge (none for 0).")
    funded_at: UtcDatetime = Field(description="When (UTC).")
