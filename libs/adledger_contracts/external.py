"""The external Kafka contract, version 1 (CONTRACT.md): what ad servers and subscribers see."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier, Name, UtcDatetime, Version
from adledger_libs.events import Event, Message
from adledger_libs.money import CurrencyCode, Micros, PositiveMicros


class SpendReported(Event):
    """Spend published by an ad server on `ads.spend.v1`: the cost of what it served (rule S1)."""

    MESSAGE_TYPE: ClassVar[str] = "SpendReported"

    event_id: Identifier = Field(description="Unique per spend; a re-sent event keeps its id.")
    ad_account_id: Identifier = Field(description="The ad account whose funds pay for the spend.")
    campaign_id: Identifier = Field(description="The campaign that served.")
    amount_micros: PositiveMicros = Field(description="Cost of what was served, in micros (> 0).")
    currency: CurrencyCode = Field(description="ISO-4217 currency; must equal the ad account's currency.")
    occurred_at: UtcDatetime = Field(description="When it was served (RFC 3339, UTC).")
    charge_id: Identifier | None = Field(
        default=None,
        description="Rule S6: a later event with the same charge_id carries the final cost; only the difference is taken.",
    )


DeliveryAction = Literal["pause", "resume"]


class DeliveryDecided(Event):
    """A pause or resume of an ad account or one campaign, on `delivery.control.v1` (rule S4)."""

    MESSAGE_TYPE: ClassVar[str] = "DeliveryDecided"

    ad_account_id: Identifier = Field(description="The ad account the decision is about.")
    campaign_id: Identifier | None = Field(description="The campaign, or null for the whole ad account.")
    action: DeliveryAction = Field(description="`pause` or `resume`.")
    reason: Name = Field(
        min_length=1,
        description="insufficient_funds, campaign_budget_reached, account_budget_reached, manual, funds_restored, …",
    )
    business_center_id: Identifier | None = Field(description="The Business Center whose funds are shared, if any.")
    decided_at: UtcDatetime = Field(description="When the decision was made (UTC).")
    cause_event_id: Identifier | None = Field(description="The spend event that tipped it, when one did.")
    overspend_micros: Micros | None = Field(
        default=None,
        ge=0,
        description="Rule S2, for an insufficient_funds pause: on the pause, the overspend already recorded from "
        "the cause event on; on its resume, the total overspend accrued while it lasted. Null otherwise.",
    )


class DeliveryStateChanged(Event):
    """The latest serving state of an ad account or campaign, on compacted `delivery.state.v1` (S4)."""

    MESSAGE_TYPE: ClassVar[str] = "DeliveryStateChanged"

    ad_account_id: Identifier = Field(description="The ad account.")
    campaign_id: Identifier | None = Field(description="The campaign, or null for the whole ad account.")
    serving: bool = Field(description="Whether the ad server may serve it now.")
    reason: Name = Field(description="Why it is in this state (the reason of the last decision).")
    updated_at: UtcDatetime = Field(description="When this state was decided (UTC).")


class BalanceBuckets(Message):
    """The buckets of a balance, in micros."""

    cash: Micros = Field(description="Cash, in micros.")
    credit_line: Micros = Field(description="Credit line still available, in micros (0 for an ad account).")
    vouchers: Micros = Field(description="Vouchers (ad credits), in micros.")


class BalanceChanged(Event):
    """The latest balance of one owner, on compacted `balances.v1`, keyed by the owner's id."""

    MESSAGE_TYPE: ClassVar[str] = "BalanceChanged"

    owner_id: Identifier = Field(description="The Business Center's or ad account's id.")
    owner_kind: Literal["business_center", "ad_account"] = Field(description="What kind of owner this is.")
    currency: CurrencyCode = Field(description="ISO-4217 currency of every amount here.")
    real_micros: Micros = Field(description="Rule W11: paid money in minus posted spend and fees.")
    virtual_micros: Micros = Field(description="Rule W11: real balance minus open holds.")
    available_micros: Micros = Field(description="What can be spent now: the buckets' total less open holds.")
    buckets: BalanceBuckets = Field(description="The balance per bucket.")
    version: Version = Field(ge=1, description="Grows by one with each change of this owner's balance.")
    updated_at: UtcDatetime = Field(description="When the balance last changed (UTC).")
