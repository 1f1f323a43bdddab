"""In-memory fakes of the campaign core's ports (cosmicpython's FakeUnitOfWork is the model): the
store keeps what the PostgreSQL tables keep, the unit of work records what would go to the outbox,
and a transaction that raises leaves the store as it was."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from adledger_auth.callers import Caller
from adledger_auth.roles import Role
from adledger_campaign.domain.campaigns import Campaign
from adledger_campaign.ports.store import AdAccount, DueDeadline, StoredCap
from adledger_libs.events import Message


@dataclass
class _Deadline:
    due_at: datetime
    done_at: datetime | None = None
    outcome: str | None = None


@dataclass
class FakeCampaignStore:
    """Implements `ports.store.CampaignStore` in memory."""

    business_centers: dict[str, str] = field(default_factory=dict)
    ad_accounts: dict[str, AdAccount] = field(default_factory=dict)
    #: Business Centers with a Finance Manager (W9), as the identity replica would say.
    with_finance_roles: set[str] = field(default_factory=set)
    caps: dict[str, StoredCap] = field(default_factory=dict)
    cap_changes: list[tuple[str, date, str, datetime]] = field(default_factory=list)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    created_by: dict[str, str] = field(default_factory=dict)
    hold_errors: dict[str, str] = field(default_factory=dict)
    deadlines: dict[tuple[str, str], _Deadline] = field(default_factory=dict)

    async def add_business_center(self, business_center_id: str, currency: str, opened_at: datetime) -> None:
        self.business_centers.setdefault(business_center_id, currency)

    async def add_ad_account(self, account: AdAccount, opened_at: datetime) -> None:
        self.ad_accounts.setdefault(account.id, account)

    async def mark_drawing_on_business_center(self, ad_account_ids: Sequence[str]) -> None:
        for account_id in ad_account_ids:
            if account_id in self.ad_accounts:
                account = self.ad_accounts[account_id]
                self.ad_accounts[account_id] = AdAccount(account.id, account.business_center_id, account.currency, True)

    async def ad_account(self, ad_account_id: str) -> AdAccount | None:
        return self.ad_accounts.get(ad_account_id)

    async def lock_ad_account(self, ad_account_id: str) -> None:
        return None

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        return business_center_id in self.with_finance_roles

    async def cap(self, ad_account_id: str, *, for_update: bool = False) -> StoredCap | None:
        return self.caps.get(ad_account_id)

    async def save_cap(self, ad_account_id: str, cap: StoredCap) -> None:
        self.caps[ad_account_id] = cap

    async def cap_changes_on(self, ad_account_id: str, utc_day: date) -> int:
        return sum(1 for account, day, _, _ in self.cap_changes if (account, day) == (ad_account_id, utc_day))

    async def record_cap_change(self, ad_account_id: str, utc_day: date, user_id: str, changed_at: datetime) -> None:
        self.cap_changes.append((ad_account_id, utc_day, user_id, changed_at))

    async def campaign(self, campaign_id: str, *, for_update: bool = False) -> Campaign | None:
        return self.campaigns.get(campaign_id)

    async def add_campaign(self, campaign: Campaign, created_by_user_id: str) -> None:
        assert campaign.id not in self.campaigns
        self.campaigns[campaign.id] = campaign
        self.created_by[campaign.id] = created_by_user_id

    async def save_campaign(self, campaign: Campaign, updated_at: datetime) -> None:
        assert campaign.id in self.campaigns
        self.campaigns[campaign.id] = campaign

    async def campaign_id_of_hold(self, hold_id: str) -> str | None:
        return next((c.id for c in self.campaigns.values() if c.hold(hold_id) is not None), None)

    async def campaign_id_of_open_invoice(self, invoice_id: str) -> str | None:
        return next((c.id for c in self.campaigns.values() if c.open_invoice_id == invoice_id), None)

    async def campaign_ids_of_ad_account(self, ad_account_id: str) -> list[str]:
        return sorted(c.id for c in self.campaigns.values() if c.ad_account_id == ad_account_id)

    async def hold_error(self, campaign_id: str) -> str | None:
        return self.hold_errors.get(campaign_id)

    async def record_hold_error(self, campaign_id: str, error: str) -> None:
        self.hold_errors[campaign_id] = error

    async def schedule_deadline(self, campaign_id: str, kind: Literal["end", "settle"], due_at: datetime) -> None:
        self.deadlines.setdefault((campaign_id, kind), _Deadline(due_at))

    async def take_due_deadline(self, now: datetime) -> DueDeadline | None:
        due = sorted(
            (deadline.due_at, campaign_id, kind)
            for (campaign_id, kind), deadline in self.deadlines.items()
            if deadline.done_at is None and deadline.due_at <= now
        )
        if not due:
            return None
        due_at, campaign_id, kind = due[0]
        return DueDeadline(campaign_id, kind, due_at)  # type: ignore[arg-type]

    async def mark_deadline_done(self, deadline: DueDeadline, outcome: str, done_at: datetime) -> None:
        found = self.deadlines[(deadline.campaign_id, deadline.kind)]
        found.done_at, found.outcome = done_at, outcome


@dataclass(frozen=True)
class Published:
    topic: str
    key: str
    message: Any


class FakeUnitOfWork:
    """Implements `ports.unit_of_work.CampaignUnitOfWork`: the store, and what would be published."""

    def __init__(self, store: FakeCampaignStore) -> None:
        self._store = store
        self.published: list[Published] = []

    @property
    def store(self) -> FakeCampaignStore:
        return self._store

    def publish(self, message: Message, *, topic: str, key: str) -> None:
        self.published.append(Published(topic, key, message))

    def messages(self, kind: type[Any]) -> list[Any]:
        return [item.message for item in self.published if isinstance(item.message, kind)]


class FakeTransactions:
    """Implements `ports.unit_of_work.Transactions`: each block is one unit of work; a block that
    raises puts the store back as it was and publishes nothing, like a rolled-back transaction."""

    def __init__(self, store: FakeCampaignStore) -> None:
        self.store = store
        self.committed: list[FakeUnitOfWork] = []

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeUnitOfWork]:
        before = copy.deepcopy(self.store.__dict__)
        work = FakeUnitOfWork(self.store)
        try:
            yield work
        except BaseException:
            self.store.__dict__.update(before)
            raise
        self.committed.append(work)


def person(user_id: str, roles: dict[str, set[Role]] | None = None, *, platform_operator: bool = False) -> Caller:
    """A signed-in person with roles per Business Center (as the identity replica has them)."""
    return Caller(
        user_id=user_id, kind="person", platform_operator=platform_operator, via="session",
        credential_id=f"s-{user_id}",
        roles_by_business_center={center: frozenset(held) for center, held in (roles or {}).items()},
    )


def integration(user_id: str, roles: dict[str, set[Role]], *, scopes: set[str]) -> Caller:
    """An integration calling with an API key of the given scopes."""
    return Caller(
        user_id=user_id, kind="integration", platform_operator=False, via="api_key", credential_id=f"key-{user_id}",
        scopes=frozenset(scopes), roles_by_business_center={center: frozenset(held) for center, held in roles.items()},
    )
