"""Balance alerts and sent e-mails (rules I6, I8): events of the invoicing service.

- `EmailSent`: the e-mail adapter rendered an `EmailRequested` and handed it to its sender (locally
  a file sink), on `invoicing.events.v1`, in the same transaction as its record of the e-mail.
- `BalanceAlertRaised`: the spend-rate job (a Faust worker) saw a balance below its low-balance
  threshold, or a runway of at most three days of average spend. It is advisory and produced
  at least once: its `event_id` and `alert_id` are the same for a re-sent alert (owner, kind,
  UTC day), so consumers drop the duplicate, and its e-mail's `email_id` is the alert id.
- `LowBalanceThresholdSet`: the low-balance threshold of a Business Center, on the compacted
  `invoicing.alert-thresholds.v1` keyed by the Business Center; the newest per key wins.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from adledger_libs.events import Event
from adledger_libs.money import CurrencyCode, Micros
from pydantic import Field

from adledger_contracts.notifications import EmailTemplate
from adledger_contracts.types import Count, Identifier, Name, Text, UtcDatetime

AlertKind = Literal["low_balance", "runway_low"]


class EmailSent(Event):
    """An e-mail was rendered and handed to the sender (rule I8); one per `email_id`."""

    MESSAGE_TYPE: ClassVar[str] = "EmailSent"

    email_id: Identifier = Field(description="The EmailRequested's idempotency key.")
    template: EmailTemplate = Field(description="The template rendered.")
    recipient: Text = Field(min_length=1, description="Who it went to: an address, `user:<id>`, or `contacts:<subject id>`.")
    subject_id: Identifier = Field(description="What it is about: an order, an invoice, a Business Center.")
    subject_line: Name = Field(description="The rendered subject line.")
    sink: Text = Field(min_length=1, description="Where it went: `file:<path>` locally, or `log`.")
    request_event_id: Identifier = Field(description="The event id of the EmailRequested it answers.")
    sent_at: UtcDatetime = Field(description="When it was sent (UTC, from the service's clock).")


class BalanceAlertRaised(Event):
    """A balance is low, or its runway short (rules I6, I8); advisory, at most one per owner, kind and UTC day."""

    MESSAGE_TYPE: ClassVar[str] = "BalanceAlertRaised"

    alert_id: Identifier = Field(description="`<kind>:<owner_id>:<UTC day>`; also the event id and the e-mail's id.")
    kind: AlertKind = Field(description="low_balance: below the threshold; runway_low: balance <= 3 x average daily spend.")
    owner_id: Identifier = Field(description="The Business Center or ad account.")
    owner_kind: Literal["business_center", "ad_account"] = Field(description="What kind of owner this is.")
    currency: CurrencyCode = Field(description="Currency of every amount here.")
    available_micros: Micros = Field(description="The available balance (balances.v1) the alert was decided on.")
    threshold_micros: Micros | None = Field(default=None, description="low_balance: the threshold it fell below.")
    average_daily_spend_micros: Micros | None = Field(
        default=None, description="runway_low: the spend of the 7 whole UTC days before `utc_day`, divided by 7 (floor)."
    )
    runway_days: Count | None = Field(
        default=None, ge=0, description="runway_low: whole days the balance lasts at that rate (floor)."
    )
    utc_day: date = Field(description="The UTC day of the event that raised it (event time, not the wall clock).")
    raised_at: UtcDatetime = Field(description="The event time of the balance or spend that raised it (UTC).")


class LowBalanceThresholdSet(Event):
    """A Business Center's low-balance alert threshold; null returns it to the default (50% of its last payment)."""

    MESSAGE_TYPE: ClassVar[str] = "LowBalanceThresholdSet"

    business_center_id: Identifier = Field(description="The Business Center.")
    threshold_micros: Micros | None = Field(
        default=None, ge=0, description="Alert when the available balance falls below this; 0 turns the alert off."
    )
    set_at: UtcDatetime = Field(description="When it was set (UTC).")
