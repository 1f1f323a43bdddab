"""Sends and user balances as pure rules (U1-U6): schedules, how much a period funds, what a send
charges and from where, its states, and the refusals. No I/O here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from adledger_libs.refusals import Refusal

Schedule = Literal["daily", "weekly", "monthly"]
Mode = Literal["refresh", "rollover"]
ChargeTo = Literal["user_balance", "funding_source"]
State = Literal["awaiting_approval", "charged", "rejected", "adjusted", "fulfilled", "cancelled"]
MAXIMUM_MICROS = 2**63 - 1


class SendsError(Refusal):
    """A refusal of the sends service; nothing changed."""


class InsufficientUserBalanceError(SendsError):
    """U2: the sender's user balance cannot cover the send."""


class InsufficientFundsError(SendsError):
    """U3: the funding source cannot cover the send; the sender may add funds (`add_funds`)."""


class AddFundsDisabledError(SendsError):
    """U3: the source is short and an admin opted out of add-funds for the campaign."""


class ApprovalRequiredError(SendsError):
    """U4: the send waits for an admin's approval (it is not charged, so it cannot be fulfilled or adjusted)."""


class SendStateError(SendsError):
    """The send is not in a state that allows this."""


class IntegrationNeedsFundingSourceError(SendsError):
    """U4: an integration's sends are charged to a funding source only."""


class NoFundingSourceError(SendsError):
    """U1, U5: the user has no team and the account has no default funding source."""


class CurrencyMismatchError(SendsError):
    """M2: the amounts are in two currencies."""


class InvalidSendsValueError(SendsError):
    """A value the rules do not allow (e.g. a campaign charging a funding source without naming it)."""


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def period_start(schedule: Schedule, moment: datetime) -> datetime:
    """The start (UTC) of the schedule period `moment` is in: the day, the ISO week (Monday), the month."""
    day = _utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)
    if schedule == "daily":
        return day
    if schedule == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_period_start(schedule: Schedule, start: datetime) -> datetime:
    """The start of the period after the one starting at `start`."""
    if schedule == "daily":
        return start + timedelta(days=1)
    if schedule == "weekly":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_amount(mode: Mode, budget_micros: int, remaining_micros: int) -> int:
    """U1, U6: what a new period adds to a user balance (and charges its funding source). A refresh
    brings the balance back to the budget, so it adds what was used (nothing when nothing was);
    a rollover adds the whole budget to what is left."""
    if mode == "refresh":
        return max(budget_micros - remaining_micros, 0)
    if remaining_micros + budget_micros > MAXIMUM_MICROS:
        raise InvalidSendsValueError("the rolled-over balance would pass 2^63 - 1 micros (M1)")
    return budget_micros


def charge_id(*parts: str) -> str:
    """A funding-source charge id (at most 48 characters, the invoicing contract's bound), one per cause."""
    return "snd-" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def user_balance_owner_id(business_center_id: str, user_id: str) -> str:
    """The ledger owner of a user balance: unique across owner kinds and bounded, whatever the ids."""
    return "ub-" + hashlib.sha256(f"{business_center_id}\x00{user_id}".encode()).hexdigest()[:40]


def user_balance_account_id(business_center_id: str, user_id: str) -> str:
    return f"ub/{user_balance_owner_id(business_center_id, user_id)}/balance"


@dataclass(frozen=True)
class SendCampaign:
    id: str
    business_center_id: str
    name: str
    charge_to: ChargeTo
    funding_source_id: str | None
    add_funds_allowed: bool
    require_approval: bool


def check_campaign(campaign: SendCampaign) -> None:
    if (campaign.charge_to == "funding_source") != (campaign.funding_source_id is not None):
        raise InvalidSendsValueError("a campaign charging a funding source names it, and only then")


@dataclass(frozen=True)
class Send:
    id: str
    business_center_id: str
    campaign_id: str
    sender_user_id: str
    via: Literal["user", "integration"]
    item_kind: Literal["egift", "item"]
    description: str
    charged_to: ChargeTo
    funding_source_id: str | None
    add_funds: bool
    price_micros: int
    charged_micros: int
    final_cost_micros: int | None
    currency: str
    state: State
    version: int
    created_at: datetime
    updated_at: datetime


def check_source_covers(*, available_micros: int, price_micros: int, add_funds: bool, add_funds_allowed: bool) -> bool:
    """U3: whether a funding-source send may be charged, and whether funds are to be added (True).
    A short source needs the sender's add-funds, which an admin may have opted out of."""
    if available_micros >= price_micros:
        return False
    if not add_funds_allowed:
        raise AddFundsDisabledError(
            f"the funding source can cover {available_micros} micros of {price_micros}, and adding funds is turned off "
            "for this campaign"
        )
    if not add_funds:
        raise InsufficientFundsError(
            f"the funding source can cover {available_micros} micros of {price_micros}: add funds (add_funds=true) to "
            "create an invoice or a card payment for it"
        )
    return True


def first_state(*, via: str, require_approval: bool) -> State:
    """U4: an integration's send waits for approval when the campaign asks for it; any other is charged at once."""
    return "awaiting_approval" if via == "integration" and require_approval else "charged"


def decide(send: Send, *, approve: bool, now: datetime) -> Send:
    """U4: an admin approves (then it is charged) or rejects (never charged) a waiting send."""
    if send.state != "awaiting_approval":
        raise SendStateError(f"send {send.id} is {send.state}, not awaiting approval")
    if approve:
        return replace(send, state="charged", charged_micros=send.price_micros, version=send.version + 1, updated_at=now)
    return replace(send, state="rejected", version=send.version + 1, updated_at=now)


def final_cost(send: Send, final_cost_micros: int, now: datetime) -> tuple[Send, int]:
    """U5: the send's final cost; the difference to what was charged (positive: an adjustment
    charge, negative: given back). Only a charged send is adjusted, once."""
    if send.state == "awaiting_approval":
        raise ApprovalRequiredError(f"send {send.id} waits for an admin's approval and was not charged")
    if send.state != "charged":
        raise SendStateError(f"send {send.id} is {send.state}: only a charged send gets its final cost")
    difference = final_cost_micros - send.charged_micros
    after = replace(
        send, state="adjusted", final_cost_micros=final_cost_micros, charged_micros=final_cost_micros,
        version=send.version + 1, updated_at=now,
    )
    return after, difference
