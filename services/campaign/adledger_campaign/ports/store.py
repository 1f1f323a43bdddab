"""The campaign service's store, as the core sees it: one transaction's view of the campaigns,
their holds and deadlines, the ad accounts the wallet opened, the caps and their changes, and
the roles of the platform's identity (W9). The core names no database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from adledger_campaign.domain.campaigns import Campaign
from adledger_campaign.domain.caps import Cap


@dataclass(frozen=True)
class AdAccount:
    """An ad account as the wallet opened it (`AdAccountOpened`), and whether it draws on its
    Business Center's cash (W7, after `AutomaticBalanceAllocationEnabled`)."""

    id: str
    business_center_id: str
    currency: str
    draws_on_business_center: bool


@dataclass(frozen=True)
class StoredCap:
    """An ad account's current cap (W10) and its snapshot version."""

    cap: Cap
    version: int
    source: Literal["user", "budget_sync"]
    changed_by_user_id: str | None
    changed_at: datetime


@dataclass(frozen=True)
class DueDeadline:
    campaign_id: str
    kind: Literal["end", "settle"]
    due_at: datetime


class UnknownCampaignError(LookupError):
    """No such campaign, or none the caller may know of: both get this same answer (W9)."""

    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"no campaign {campaign_id!r}")


class UnknownAdAccountError(LookupError):
    """No such ad account (yet), or none the caller may know of: both get this same answer (W9)."""

    def __init__(self, ad_account_id: str) -> None:
        super().__init__(f"no ad account {ad_account_id!r} (the wallet opens them; it may not have arrived yet)")


class NoBudgetCapError(LookupError):
    """The ad account has no cap: nobody set one and Budget Sync gave it none (W5, W10)."""

    def __init__(self, ad_account_id: str) -> None:
        super().__init__(f"ad account {ad_account_id!r} has no budget cap set")


class CampaignStore(Protocol):
    """One transaction's view; a `for_update` read locks what it read until the transaction ends."""

    # The wallet's Business Centers and ad accounts.

    async def add_business_center(self, business_center_id: str, currency: str, opened_at: datetime) -> None: ...

    async def add_ad_account(self, account: AdAccount, opened_at: datetime) -> None: ...

    async def mark_drawing_on_business_center(self, ad_account_ids: Sequence[str]) -> None:
        """W7: these accounts now draw on their Business Center's cash."""
        ...

    async def ad_account(self, ad_account_id: str) -> AdAccount | None: ...

    async def lock_ad_account(self, ad_account_id: str) -> None:
        """Serialise the cap changes of one account, so two concurrent changes count each other (W10)."""
        ...

    # Roles (W9), from the service's replica of the platform's identity.

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        """W9: the Business Center has at least one Finance Manager."""
        ...

    # Caps (W5, W10).

    async def cap(self, ad_account_id: str, *, for_update: bool = False) -> StoredCap | None: ...

    async def save_cap(self, ad_account_id: str, cap: StoredCap) -> None: ...

    async def cap_changes_on(self, ad_account_id: str, utc_day: date) -> int:
        """How many changes by people were counted for the account on that UTC day (W10)."""
        ...

    async def record_cap_change(
        self, ad_account_id: str, utc_day: date, user_id: str, changed_at: datetime
    ) -> None: ...

    # Campaigns and their holds.

    async def campaign(self, campaign_id: str, *, for_update: bool = False) -> Campaign | None: ...

    async def add_campaign(self, campaign: Campaign, created_by_user_id: str) -> None: ...

    async def save_campaign(self, campaign: Campaign, updated_at: datetime) -> None:
        """The campaign's state and every one of its holds."""
        ...

    async def campaign_id_of_hold(self, hold_id: str) -> str | None: ...

    async def campaign_id_of_open_invoice(self, invoice_id: str) -> str | None: ...

    async def campaign_ids_of_ad_account(self, ad_account_id: str) -> list[str]: ...

    async def hold_error(self, campaign_id: str) -> str | None:
        """The last wallet refusal of the campaign's hold commands that changed nothing, for an operator."""
        ...

    async def record_hold_error(self, campaign_id: str, error: str) -> None: ...

    # Deadlines (C3, C4, T1).

    async def schedule_deadline(self, campaign_id: str, kind: Literal["end", "settle"], due_at: datetime) -> None:
        """At most one deadline of each kind per campaign; a second is ignored."""
        ...

    async def take_due_deadline(self, now: datetime) -> DueDeadline | None:
        """The oldest due deadline that no other transaction holds, locked for this one."""
        ...

    async def mark_deadline_done(self, deadline: DueDeadline, outcome: str, done_at: datetime) -> None: ...
