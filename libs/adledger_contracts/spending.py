"""What the spend consumer posted, on `spend.posted.v1`: the input of monthly invoices (I7), the
campaign service's delivered totals (C3, C4) and the spend-rate job (runway alerts).

One event per (ad account, campaign) per consumer batch, summed; events of one ad account keep
their order (the topic is keyed by ad account), and each event's id is stable across a replay
of the batch, so a consumer that dedups by event id counts every micro once.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Count, Identifier, UtcDatetime
from adledger_libs.events import Event
from adledger_libs.money import CurrencyCode, Micros


class SpendPosted(Event):
    """Spend taken for one campaign of one ad account in one batch (rules S1, S2, S6, W7)."""

    MESSAGE_TYPE: ClassVar[str] = "SpendPosted"

    ad_account_id: Identifier = Field(description="The ad account.")
    campaign_id: Identifier = Field(description="The campaign.")
    business_center_id: Identifier | None = Field(default=None, description="The ad account's Business Center.")
    funding_mode: Literal["drawdown", "prepaid"] = Field(
        description="drawdown: taken from the balances in W7 order now; prepaid: delivered against the campaign's booking."
    )
    amount_micros: Micros = Field(
        description="The sum taken; negative when final-cost adjustments (S6) gave back more than new spend took."
    )
    from_booking_micros: Micros = Field(
        default=0, description="Prepaid: the part delivered against the booking; the rest was taken in W7 order."
    )
    currency: CurrencyCode = Field(description="Currency.")
    spend_event_count: Count = Field(ge=1, description="How many spend events it sums.")
    first_occurred_at: UtcDatetime = Field(description="The earliest occurred_at among them.")
    last_occurred_at: UtcDatetime = Field(description="The latest occurred_at among them.")
    posted_at: UtcDatetime = Field(description="When it was posted (UTC); its calendar month is the month of I7.")
