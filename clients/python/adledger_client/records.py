"""The records of the external contract, version 1 (CONTRACT.md), as frozen pydantic models.

They are the client's own copy of the contract, not the platform's models: an ad server installs
this package alone. The contract fixes names and types and allows fields to be added, so records
that are read ignore fields they do not know; the spend event, which the ad server writes, refuses
an unknown one (a misspelt field would otherwise be dropped without a word).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from adledger_client.types import CurrencyCode, Identifier, Micros, Name, PositiveMicros, UtcDatetime, Version

SPEND_EVENT_TYPE = "SpendReported"
DECISION_EVENT_TYPE = "DeliveryDecided"
STATE_EVENT_TYPE = "DeliveryStateChanged"
BALANCE_EVENT_TYPE = "BalanceChanged"
SCHEMA_VERSION = 1


def new_event_id() -> str:
    """A new, unique event id (a random UUID)."""
    return str(uuid.uuid4())


class _Record(BaseModel):
    """A record read from the platform: immutable, typed, unknown fields ignored (the contract's rule)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class SpendEvent(BaseModel):
    """A spend on `ads.spend.v1`: the cost of what an ad server served (rules S1, S6).

    Build it once and keep it until it is acknowledged: publishing the same object again (after a
    timeout, a crash of the broker connection) re-sends it with the same `event_id`, which the
    platform takes once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    MESSAGE_TYPE: ClassVar[str] = SPEND_EVENT_TYPE

    event_id: Identifier = Field(
        default_factory=new_event_id,
        description="Unique per spend; a re-sent event keeps its id. Pass your own id of what was served (an "
        "impression or auction id) to keep it across restarts of the ad server too.",
    )
    ad_account_id: Identifier = Field(description="The ad account whose funds pay for the spend (the record's key).")
    campaign_id: Identifier = Field(description="The campaign that served.")
    amount_micros: PositiveMicros = Field(description="Cost of what was served, in micros (an integer > 0).")
    currency: CurrencyCode = Field(description="ISO-4217 currency; must equal the ad account's currency.")
    occurred_at: UtcDatetime = Field(description="When it was served (RFC 3339, UTC).")
    charge_id: Identifier | None = Field(
        default=None,
        description="Rule S6: a later event with the same charge_id carries the final cost; only the difference is "
        "taken.",
    )

    def final_cost(
        self, amount_micros: int, *, event_id: str | None = None, occurred_at: datetime | None = None
    ) -> SpendEvent:
        """The final cost of this charge (rule S6): a new event with the same charge, account,
        campaign and currency, carrying the whole final cost (not the difference; the platform
        takes or gives back the difference). It keeps this event's `occurred_at`, when the charged
        thing was served, unless told otherwise.

        Raises:
            ValueError: this event carries no `charge_id`, so no later event can adjust it; or the
                final cost is not an integer from 1 to 2^63 - 1 micros (the contract has no zero).
        """
        if self.charge_id is None:
            raise ValueError("only a spend with a charge_id can get a final cost (rule S6)")
        return SpendEvent(
            event_id=event_id or new_event_id(),
            ad_account_id=self.ad_account_id,
            campaign_id=self.campaign_id,
            amount_micros=amount_micros,
            currency=self.currency,
            occurred_at=occurred_at or self.occurred_at,
            charge_id=self.charge_id,
        )

    def to_json(self) -> bytes:
        """The record's value: the contract's JSON, without `charge_id` when there is none."""
        return self.model_dump_json(exclude_none=True).encode()


DeliveryAction = Literal["pause", "resume"]


class DeliveryDecision(_Record):
    """A pause or resume on `delivery.control.v1` (rule S4), keyed by the ad account."""

    MESSAGE_TYPE: ClassVar[str] = DECISION_EVENT_TYPE

    ad_account_id: Identifier = Field(description="The ad account the decision is about.")
    campaign_id: Identifier | None = Field(description="The campaign, or null for the whole ad account.")
    action: DeliveryAction = Field(description="`pause` or `resume`.")
    reason: Name = Field(description="insufficient_funds, campaign_budget_reached, manual, funds_restored, …")
    business_center_id: Identifier | None = Field(default=None, description="The Business Center, if any.")
    decided_at: UtcDatetime = Field(description="When the decision was made (UTC).")
    cause_event_id: Identifier | None = Field(default=None, description="The spend event that tipped it, if one did.")
    event_id: Identifier | None = Field(default=None, description="The record's own id (a field the platform adds).")

    @property
    def serving(self) -> bool:
        return self.action == "resume"


class DeliveryState(_Record):
    """The latest serving state of an ad account or a campaign, on compacted `delivery.state.v1`."""

    MESSAGE_TYPE: ClassVar[str] = STATE_EVENT_TYPE

    ad_account_id: Identifier = Field(description="The ad account.")
    campaign_id: Identifier | None = Field(description="The campaign, or null for the whole ad account.")
    serving: StrictBool = Field(description="Whether the ad server may serve it now.")
    reason: Name = Field(description="Why it is in this state.")
    updated_at: UtcDatetime = Field(description="When this state was decided (UTC).")
    event_id: Identifier | None = Field(default=None, description="The record's own id (a field the platform adds).")


class BalanceBuckets(_Record):
    """The buckets of a balance, in micros."""

    cash: Micros = Field(description="Cash, in micros (negative when the owner overspent).")
    credit_line: Micros = Field(description="Credit line still available, in micros.")
    vouchers: Micros = Field(description="Vouchers (ad credits), in micros.")


class Balance(_Record):
    """The latest balance of one owner (a Business Center or an ad account), on compacted `balances.v1`."""

    MESSAGE_TYPE: ClassVar[str] = BALANCE_EVENT_TYPE

    owner_id: Identifier = Field(description="The Business Center's or ad account's id (the record's key).")
    owner_kind: Literal["business_center", "ad_account"] = Field(description="What kind of owner this is.")
    currency: CurrencyCode = Field(description="ISO-4217 currency of every amount here.")
    real_micros: Micros = Field(description="Paid money in minus posted spend and fees.")
    virtual_micros: Micros = Field(description="The real balance minus open holds.")
    available_micros: Micros = Field(description="What can be spent now.")
    buckets: BalanceBuckets = Field(description="The balance per bucket.")
    version: Version = Field(description="Grows by one with each change of this owner's balance.")
    updated_at: UtcDatetime = Field(description="When the balance last changed (UTC).")
    event_id: Identifier | None = Field(default=None, description="The record's own id (a field the platform adds).")
