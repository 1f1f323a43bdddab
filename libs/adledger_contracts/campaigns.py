"""Events of the campaign service on `campaign.events.v1` (rules C1-C5, W5, W10, S3).

Both events are *snapshots*: each carries the whole current state of its campaign or cap and a
`version` that grows by one per change, so a consumer (the spend consumer keeps budgets as local
state) upserts the newest version and ignores an older one, whatever the order it sees them in.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier, Name, UtcDatetime, Version
from adledger_libs.events import Event
from adledger_libs.money import CurrencyCode, NonNegativeMicros, PositiveMicros

CampaignStatus = Literal["draft", "awaiting_payment", "active", "paused", "ended"]
PauseCause = Literal["user", "budget", "funds"]
FundingMode = Literal["drawdown", "prepaid"]
CapKind = Literal["monthly", "daily", "custom", "unlimited"]


class CampaignChanged(Event):
    """A campaign was created or changed; the whole campaign as it is now (rule C5)."""

    MESSAGE_TYPE: ClassVar[str] = "CampaignChanged"

    campaign_id: Identifier = Field(description="The campaign.")
    ad_account_id: Identifier = Field(description="The ad account it belongs to.")
    business_center_id: Identifier | None = Field(default=None, description="The ad account's Business Center, when known.")
    name: Name = Field(description="For people.")
    funding_mode: FundingMode = Field(
        description="drawdown: spends from the balances in real time (W7); prepaid: books its budget up front as holds (C1)."
    )
    budget_kind: Literal["lifetime", "daily"] = Field(description="The campaign budget is for its whole life or per UTC day.")
    budget_micros: PositiveMicros = Field(description="The campaign budget (S3).")
    booked_micros: NonNegativeMicros = Field(
        description="Prepaid: the money held for it now (C1, C2); spend up to this is taken from its holds. Drawdown: 0."
    )
    currency: CurrencyCode = Field(description="The ad account's currency (M2).")
    status: CampaignStatus = Field(description="Its state after the change (C5).")
    previous_status: CampaignStatus | None = Field(description="Its state before; null when just created.")
    pause_cause: PauseCause | None = Field(default=None, description="Why it is paused: by a user, its budget, or no funds.")
    starts_at: UtcDatetime | None = Field(default=None, description="Schedule start (UTC); null: at activation.")
    ends_at: UtcDatetime | None = Field(default=None, description="Schedule end (UTC); null: open-ended.")
    version: Version = Field(ge=1, description="Grows by one with each change of this campaign.")
    changed_by_user_id: Identifier | None = Field(default=None, description="Who changed it; null when the system did.")
    changed_at: UtcDatetime = Field(description="When (UTC).")


class AdAccountBudgetCapChanged(Event):
    """An ad account's budget cap was set or changed (rules W5, W9, W10, S3); the whole cap as it is now."""

    MESSAGE_TYPE: ClassVar[str] = "AdAccountBudgetCapChanged"

    ad_account_id: Identifier = Field(description="The ad account.")
    business_center_id: Identifier | None = Field(default=None, description="Its Business Center, when known.")
    kind: CapKind = Field(description="The period the cap applies to; unlimited lifts it.")
    amount_micros: NonNegativeMicros | None = Field(description="The cap for the period; null for unlimited.")
    starts_on: date | None = Field(default=None, description="First UTC day of a custom cap.")
    ends_on: date | None = Field(default=None, description="Last UTC day of a custom cap.")
    currency: CurrencyCode = Field(description="The ad account's currency.")
    source: Literal["user", "budget_sync"] = Field(description="A person (counted for W10) or Budget Sync at ABA enable (W5).")
    changed_by_user_id: Identifier | None = Field(default=None, description="Who; null for Budget Sync.")
    version: Version = Field(ge=1, description="Grows by one with each change of this account's cap.")
    changed_at: UtcDatetime = Field(description="When (UTC).")
