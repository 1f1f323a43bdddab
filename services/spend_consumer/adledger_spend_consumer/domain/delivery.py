"""Serving states and their causes (rules S3, S4, W8): pure.

A key is an ad account (`ad_account_id`) or one of its campaigns (`ad_account_id/campaign_id`),
the keys of `delivery.state.v1`. A key may be paused for several causes at once: an ad account
with no funds whose cap is reached too, a campaign paused by its user that also reached its
budget. It serves only when no cause is left.

- A cause that starts is published as a `pause` with the cause as its reason, even when the key
  was already paused for another cause (the ad server learns why); a cause already in force is
  not published again (no duplicate pause for one cause).
- A cause that ends is published as a `resume` only when it was the last one; while others
  remain, only the latest state changes (its reason becomes the newest cause still in force).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Action = Literal["pause", "resume"]

# Causes (the reason of the pause they start).
INSUFFICIENT_FUNDS = "insufficient_funds"
CAMPAIGN_BUDGET_REACHED = "campaign_budget_reached"
ACCOUNT_BUDGET_REACHED = "account_budget_reached"
MANUAL = "manual"
CAMPAIGN_DRAFT = "campaign_draft"
CAMPAIGN_AWAITING_PAYMENT = "campaign_awaiting_payment"
CAMPAIGN_ENDED = "campaign_ended"

# Reasons of a resume.
FUNDS_RESTORED = "funds_restored"
BUDGET_RAISED = "budget_raised"
BUDGET_PERIOD_RENEWED = "budget_period_renewed"
ACCOUNT_BUDGET_RAISED = "account_budget_raised"
ACCOUNT_BUDGET_PERIOD_RENEWED = "account_budget_period_renewed"
CAMPAIGN_ACTIVATED = "campaign_activated"


def state_key(ad_account_id: str, campaign_id: str | None) -> str:
    """The key of `delivery.state.v1` (CONTRACT.md): the ad account, or `ad_account_id/campaign_id`."""
    return ad_account_id if campaign_id is None else f"{ad_account_id}/{campaign_id}"


@dataclass(frozen=True, slots=True)
class CauseChange:
    """A cause of a pause that starts or ends for one key."""

    ad_account_id: str
    campaign_id: str | None
    cause: str
    starts: bool
    #: What is published: the cause itself for a start, the resume's reason for an end.
    reason: str
    business_center_id: str | None = None
    #: The spend event that tipped it, when one did (S3, W8: also inside a batch).
    cause_event_id: str | None = None
    #: Rule S2, for insufficient funds: the overspend recorded with the pause, or over it on the resume.
    overspend_micros: int | None = None

    @property
    def key(self) -> str:
        return state_key(self.ad_account_id, self.campaign_id)


def start(
    ad_account_id: str, campaign_id: str | None, cause: str, *, business_center_id: str | None = None,
    cause_event_id: str | None = None, overspend_micros: int | None = None,
) -> CauseChange:
    return CauseChange(ad_account_id, campaign_id, cause, True, cause, business_center_id, cause_event_id, overspend_micros)


def end(ad_account_id: str, campaign_id: str | None, cause: str, reason: str, *, business_center_id: str | None = None) -> CauseChange:
    return CauseChange(ad_account_id, campaign_id, cause, False, reason, business_center_id)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change that took effect, the key's causes after it, and what to publish."""

    change: CauseChange
    causes: tuple[str, ...]
    #: What goes on `delivery.control.v1`; None: the key stays paused, only its latest state changes.
    action: Action | None

    @property
    def serving(self) -> bool:
        return not self.causes

    @property
    def state_reason(self) -> str:
        """The reason of the latest state: the decision's, or the newest cause still in force."""
        return self.change.reason if self.action is not None else self.causes[-1]


def resolve(
    current: Mapping[str, tuple[str, ...]], changes: Iterable[CauseChange]
) -> tuple[list[Transition], dict[str, tuple[str, ...]]]:
    """Apply changes in order to the keys' current causes; returns the transitions that took
    effect and the new causes of every key they changed. A start of a cause in force, or an end
    of one that is not, changes nothing."""
    after: dict[str, tuple[str, ...]] = {}
    transitions: list[Transition] = []
    for change in changes:
        key = change.key
        causes = after[key] if key in after else tuple(current.get(key, ()))
        if change.starts:
            if change.cause in causes:
                continue
            causes = (*causes, change.cause)
            action: Action | None = "pause"
        else:
            if change.cause not in causes:
                continue
            causes = tuple(cause for cause in causes if cause != change.cause)
            action = None if causes else "resume"
        after[key] = causes
        transitions.append(Transition(change, causes, action))
    return transitions, after
