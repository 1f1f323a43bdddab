"""The campaign service's tables (schema `campaign`): the wallet's Business Centers and ad
accounts, caps and their changes, campaigns with their holds, deadlines; and the roles of the
platform's identity from the library's replica tables (W9). Implements `ports.store` and
`ports.unit_of_work` over the library's outbox unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, datetime
from typing import Literal

import asyncpg
from adledger_auth import replica
from adledger_libs.events import Message
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work

from adledger_campaign.domain.campaigns import Campaign, Hold, HoldState, PauseCause, Status
from adledger_campaign.domain.caps import Cap, CapKind
from adledger_campaign.ports.store import AdAccount, DueDeadline, StoredCap


class PostgresCampaignStore:
    """Implements `ports.store.CampaignStore` on one transaction's connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    # The wallet's Business Centers and ad accounts -------------------------------------------------

    async def add_business_center(self, business_center_id: str, currency: str, opened_at: datetime) -> None:
        await self._conn.execute(
            "insert into business_centers (id, currency, opened_at) values ($1, $2, $3) on conflict do nothing",
            business_center_id, currency, opened_at,
        )

    async def add_ad_account(self, account: AdAccount, opened_at: datetime) -> None:
        await self._conn.execute(
            "insert into ad_accounts (id, business_center_id, currency, draws_on_business_center, opened_at)"
            " values ($1, $2, $3, $4, $5) on conflict do nothing",
            account.id, account.business_center_id, account.currency, account.draws_on_business_center, opened_at,
        )

    async def mark_drawing_on_business_center(self, ad_account_ids: Sequence[str]) -> None:
        await self._conn.execute(
            "update ad_accounts set draws_on_business_center = true where id = any($1::text[])", list(ad_account_ids)
        )

    async def ad_account(self, ad_account_id: str) -> AdAccount | None:
        row = await self._conn.fetchrow(
            "select id, business_center_id, currency, draws_on_business_center from ad_accounts where id = $1",
            ad_account_id,
        )
        if row is None:
            return None
        return AdAccount(row["id"], row["business_center_id"], row["currency"], row["draws_on_business_center"])

    async def lock_ad_account(self, ad_account_id: str) -> None:
        await self._conn.execute("select 1 from ad_accounts where id = $1 for update", ad_account_id)

    # Roles (W9) -----------------------------------------------------------------------------------

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        return await replica.finance_roles_set_up(self._conn, business_center_id)

    # Caps (W5, W10) -------------------------------------------------------------------------------

    async def cap(self, ad_account_id: str, *, for_update: bool = False) -> StoredCap | None:
        row = await self._conn.fetchrow(
            "select kind, amount_micros, starts_on, ends_on, version, source, changed_by_user_id, changed_at"
            " from budget_caps where ad_account_id = $1" + (" for update" if for_update else ""),
            ad_account_id,
        )
        if row is None:
            return None
        cap = Cap(CapKind(row["kind"]), row["amount_micros"], row["starts_on"], row["ends_on"])
        return StoredCap(cap, row["version"], row["source"], row["changed_by_user_id"], row["changed_at"])

    async def save_cap(self, ad_account_id: str, cap: StoredCap) -> None:
        await self._conn.execute(
            """insert into budget_caps (ad_account_id, kind, amount_micros, starts_on, ends_on, source,
                                        changed_by_user_id, version, changed_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               on conflict (ad_account_id) do update set kind = $2, amount_micros = $3, starts_on = $4, ends_on = $5,
                   source = $6, changed_by_user_id = $7, version = $8, changed_at = $9""",
            ad_account_id, cap.cap.kind.value, cap.cap.amount_micros, cap.cap.starts_on, cap.cap.ends_on, cap.source,
            cap.changed_by_user_id, cap.version, cap.changed_at,
        )

    async def cap_changes_on(self, ad_account_id: str, utc_day: date) -> int:
        count = await self._conn.fetchval(
            "select count(*) from cap_changes where ad_account_id = $1 and utc_day = $2", ad_account_id, utc_day
        )
        return int(count)

    async def record_cap_change(self, ad_account_id: str, utc_day: date, user_id: str, changed_at: datetime) -> None:
        await self._conn.execute(
            "insert into cap_changes (ad_account_id, utc_day, changed_at, user_id) values ($1, $2, $3, $4)",
            ad_account_id, utc_day, changed_at, user_id,
        )

    # Campaigns and their holds --------------------------------------------------------------------

    async def campaign(self, campaign_id: str, *, for_update: bool = False) -> Campaign | None:
        row = await self._conn.fetchrow(
            "select * from campaigns where id = $1" + (" for update" if for_update else ""), campaign_id
        )
        if row is None:
            return None
        holds = await self._conn.fetch("select * from campaign_holds where campaign_id = $1 order by seq", campaign_id)
        return _campaign(row, holds)

    async def add_campaign(self, campaign: Campaign, created_by_user_id: str) -> None:
        await self._conn.execute(
            """insert into campaigns (id, ad_account_id, business_center_id, name, funding_mode, budget_kind,
                   budget_micros, currency, status, version, starts_at, ends_at, created_by_user_id, created_at,
                   updated_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)""",
            campaign.id, campaign.ad_account_id, campaign.business_center_id, campaign.name, campaign.funding_mode,
            campaign.budget_kind, campaign.budget_micros, campaign.currency, campaign.status.value, campaign.version,
            campaign.starts_at, campaign.ends_at, created_by_user_id, campaign.created_at,
        )

    async def save_campaign(self, campaign: Campaign, updated_at: datetime) -> None:
        await self._conn.execute(
            """update campaigns set name = $2, budget_micros = $3, status = $4, pause_cause = $5, version = $6,
                   payer_owner_id = $7, activation_requested = $8, delivered_micros = $9, spent_micros = $10,
                   open_invoice_id = $11, invoice_count = $12, settled = $13, updated_at = $14
               where id = $1""",
            campaign.id, campaign.name, campaign.budget_micros, campaign.status.value,
            campaign.pause_cause.value if campaign.pause_cause else None, campaign.version, campaign.payer_owner_id,
            campaign.activation_requested, campaign.delivered_micros, campaign.spent_micros, campaign.open_invoice_id,
            campaign.invoice_count, campaign.settled, updated_at,
        )
        await self._conn.executemany(
            """insert into campaign_holds (hold_id, campaign_id, seq, amount_micros, state, posted_micros)
               values ($1, $2, $3, $4, $5, $6)
               on conflict (hold_id) do update set amount_micros = $4, state = $5, posted_micros = $6""",
            [
                (hold.hold_id, campaign.id, hold.seq, hold.amount_micros, hold.state.value, hold.posted_micros)
                for hold in campaign.holds
            ],
        )

    async def campaign_id_of_hold(self, hold_id: str) -> str | None:
        value = await self._conn.fetchval("select campaign_id from campaign_holds where hold_id = $1", hold_id)
        return str(value) if value is not None else None

    async def campaign_id_of_open_invoice(self, invoice_id: str) -> str | None:
        value = await self._conn.fetchval("select id from campaigns where open_invoice_id = $1", invoice_id)
        return str(value) if value is not None else None

    async def campaign_ids_of_ad_account(self, ad_account_id: str) -> list[str]:
        rows = await self._conn.fetch("select id from campaigns where ad_account_id = $1 order by id", ad_account_id)
        return [str(row["id"]) for row in rows]

    async def hold_error(self, campaign_id: str) -> str | None:
        value = await self._conn.fetchval("select hold_error from campaigns where id = $1", campaign_id)
        return str(value) if value is not None else None

    async def record_hold_error(self, campaign_id: str, error: str) -> None:
        await self._conn.execute("update campaigns set hold_error = $2 where id = $1", campaign_id, error)

    # Deadlines (C3, C4, T1) -----------------------------------------------------------------------

    async def schedule_deadline(self, campaign_id: str, kind: Literal["end", "settle"], due_at: datetime) -> None:
        await self._conn.execute(
            "insert into deadlines (campaign_id, kind, due_at) values ($1, $2, $3) on conflict do nothing",
            campaign_id, kind, due_at,
        )

    async def take_due_deadline(self, now: datetime) -> DueDeadline | None:
        # FOR UPDATE SKIP LOCKED: a second instance skips the row instead of waiting, and once this
        # transaction commits the row is done for everyone.
        row = await self._conn.fetchrow(
            """select campaign_id, kind, due_at from deadlines
               where done_at is null and due_at <= $1
               order by due_at, campaign_id, kind
               limit 1
               for update skip locked""",
            now,
        )
        return DueDeadline(row["campaign_id"], row["kind"], row["due_at"]) if row is not None else None

    async def mark_deadline_done(self, deadline: DueDeadline, outcome: str, done_at: datetime) -> None:
        await self._conn.execute(
            "update deadlines set done_at = $3, outcome = $4 where campaign_id = $1 and kind = $2",
            deadline.campaign_id, deadline.kind, done_at, outcome,
        )


def _campaign(row: asyncpg.Record, holds: Sequence[asyncpg.Record]) -> Campaign:
    return Campaign(
        id=row["id"], ad_account_id=row["ad_account_id"], business_center_id=row["business_center_id"],
        name=row["name"], funding_mode=row["funding_mode"], budget_kind=row["budget_kind"],
        budget_micros=row["budget_micros"],
        currency=row["currency"], status=Status(row["status"]),
        pause_cause=PauseCause(row["pause_cause"]) if row["pause_cause"] else None,
        starts_at=row["starts_at"], ends_at=row["ends_at"], version=row["version"], created_at=row["created_at"],
        payer_owner_id=row["payer_owner_id"], activation_requested=row["activation_requested"],
        delivered_micros=row["delivered_micros"], spent_micros=row["spent_micros"],
        open_invoice_id=row["open_invoice_id"], invoice_count=row["invoice_count"], settled=row["settled"],
        holds=tuple(
            Hold(hold["hold_id"], hold["seq"], hold["amount_micros"], HoldState(hold["state"]), hold["posted_micros"])
            for hold in holds
        ),
    )


class PostgresCampaignUnitOfWork:
    """Implements `ports.unit_of_work.CampaignUnitOfWork` over the library's outbox unit of work
    (an HTTP command's, a consumer batch's, or one the deadline job opens)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._store = PostgresCampaignStore(uow.conn)

    @property
    def store(self) -> PostgresCampaignStore:
        return self._store

    def publish(self, message: Message, *, topic: str, key: str) -> None:
        self._uow.publish(message, topic=topic, key=key)


def transactions(
    pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay | None]
) -> Callable[[], AbstractAsyncContextManager[PostgresCampaignUnitOfWork]]:
    """New units of work on the service's pool: committed, outbox rows included, when the block ends."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[PostgresCampaignUnitOfWork]:
        async with unit_of_work(pool(), relay()) as uow:
            yield PostgresCampaignUnitOfWork(uow)

    return transaction


async def next_deadline(pool: asyncpg.Pool) -> datetime | None:
    """When the earliest campaign deadline not yet acted on is due (the sandbox clock stops there, issue 17)."""
    due: datetime | None = await pool.fetchval("select min(due_at) from deadlines where done_at is null")
    return due
