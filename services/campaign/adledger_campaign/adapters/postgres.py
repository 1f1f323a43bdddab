"""The campaign service's tables (schema `campaign`): users and roles, the wallet's Business
Centers and ad accounts, caps and their changes, campaigns with their holds, deadlines."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from adledger_campaign.domain.campaigns import Campaign, Hold, HoldState, PauseCause, Status
from adledger_campaign.domain.caps import Cap, CapKind, Role


class UnknownCampaignError(LookupError):
    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"no campaign {campaign_id!r}")


class UnknownAdAccountError(LookupError):
    def __init__(self, ad_account_id: str) -> None:
        super().__init__(f"no ad account {ad_account_id!r} (the wallet opens them; it may not have arrived yet)")


class UnknownUserError(LookupError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user {user_id!r}")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    platform_operator: bool


@dataclass(frozen=True)
class AdAccount:
    id: str
    business_center_id: str
    currency: str
    draws_on_business_center: bool


@dataclass(frozen=True)
class StoredCap:
    cap: Cap
    version: int
    source: str
    changed_by_user_id: str | None
    changed_at: datetime


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Users and roles ---------------------------------------------------------------------------------


async def user_by_token(conn: asyncpg.Connection, token: str) -> User | None:
    row = await conn.fetchrow("select id, name, platform_operator from users where token_sha256 = $1", token_digest(token))
    return User(row["id"], row["name"], row["platform_operator"]) if row is not None else None


async def insert_user(conn: asyncpg.Connection, user_id: str, name: str, token: str, *, platform_operator: bool, now: datetime) -> bool:
    inserted = await conn.fetchval(
        "insert into users (id, name, token_sha256, platform_operator, created_at) values ($1, $2, $3, $4, $5)"
        " on conflict (id) do nothing returning true",
        user_id, name, token_digest(token), platform_operator, now,
    )
    return bool(inserted)


async def require_user(conn: asyncpg.Connection, user_id: str) -> None:
    if not await conn.fetchval("select exists(select 1 from users where id = $1)", user_id):
        raise UnknownUserError(user_id)


async def add_membership(conn: asyncpg.Connection, business_center_id: str, user_id: str, role: Role) -> None:
    await conn.execute(
        "insert into memberships (business_center_id, user_id, role) values ($1, $2, $3) on conflict do nothing",
        business_center_id, user_id, role.value,
    )


async def roles_of(conn: asyncpg.Connection, user_id: str, business_center_id: str) -> frozenset[Role]:
    rows = await conn.fetch("select role from memberships where business_center_id = $1 and user_id = $2", business_center_id, user_id)
    return frozenset(Role(row["role"]) for row in rows)


async def finance_roles_enabled(conn: asyncpg.Connection, business_center_id: str) -> bool:
    """W9: a Business Center has finance roles set up when one of its members is a Finance Manager
    (the wallet decides it the same way)."""
    return bool(
        await conn.fetchval(
            "select exists(select 1 from memberships where business_center_id = $1 and role = 'finance_manager')", business_center_id
        )
    )


# The wallet's Business Centers and ad accounts ------------------------------------------------------


async def insert_business_center(conn: asyncpg.Connection, business_center_id: str, currency: str, opened_at: datetime) -> None:
    await conn.execute(
        "insert into business_centers (id, currency, opened_at) values ($1, $2, $3) on conflict do nothing",
        business_center_id, currency, opened_at,
    )


async def insert_ad_account(conn: asyncpg.Connection, account: AdAccount, opened_at: datetime) -> None:
    await conn.execute(
        "insert into ad_accounts (id, business_center_id, currency, draws_on_business_center, opened_at)"
        " values ($1, $2, $3, $4, $5) on conflict do nothing",
        account.id, account.business_center_id, account.currency, account.draws_on_business_center, opened_at,
    )


async def mark_drawing_on_business_center(conn: asyncpg.Connection, ad_account_ids: list[str]) -> None:
    await conn.execute("update ad_accounts set draws_on_business_center = true where id = any($1::text[])", ad_account_ids)


async def find_ad_account(conn: asyncpg.Connection, ad_account_id: str) -> AdAccount | None:
    row = await conn.fetchrow("select * from ad_accounts where id = $1", ad_account_id)
    if row is None:
        return None
    return AdAccount(row["id"], row["business_center_id"], row["currency"], row["draws_on_business_center"])


async def load_ad_account(conn: asyncpg.Connection, ad_account_id: str) -> AdAccount:
    account = await find_ad_account(conn, ad_account_id)
    if account is None:
        raise UnknownAdAccountError(ad_account_id)
    return account


# Caps (W10) -----------------------------------------------------------------------------------------


async def load_cap(conn: asyncpg.Connection, ad_account_id: str, *, for_update: bool = False) -> StoredCap | None:
    row = await conn.fetchrow("select * from budget_caps where ad_account_id = $1" + (" for update" if for_update else ""), ad_account_id)
    if row is None:
        return None
    cap = Cap(CapKind(row["kind"]), row["amount_micros"], row["starts_on"], row["ends_on"])
    return StoredCap(cap, row["version"], row["source"], row["changed_by_user_id"], row["changed_at"])


async def save_cap(
    conn: asyncpg.Connection, ad_account_id: str, cap: Cap, *, version: int, source: str, user_id: str | None, now: datetime
) -> None:
    await conn.execute(
        """insert into budget_caps (ad_account_id, kind, amount_micros, starts_on, ends_on, source, changed_by_user_id, version, changed_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           on conflict (ad_account_id) do update set kind = $2, amount_micros = $3, starts_on = $4, ends_on = $5,
               source = $6, changed_by_user_id = $7, version = $8, changed_at = $9""",
        ad_account_id, cap.kind.value, cap.amount_micros, cap.starts_on, cap.ends_on, source, user_id, version, now,
    )


async def lock_ad_account(conn: asyncpg.Connection, ad_account_id: str) -> None:
    """Serialise cap changes of one account, so two concurrent changes count each other (W10)."""
    await conn.execute("select 1 from ad_accounts where id = $1 for update", ad_account_id)


async def cap_changes_on(conn: asyncpg.Connection, ad_account_id: str, utc_day: date) -> int:
    return int(await conn.fetchval("select count(*) from cap_changes where ad_account_id = $1 and utc_day = $2", ad_account_id, utc_day))


async def record_cap_change(conn: asyncpg.Connection, ad_account_id: str, utc_day: date, user_id: str, now: datetime) -> None:
    await conn.execute(
        "insert into cap_changes (ad_account_id, utc_day, changed_at, user_id) values ($1, $2, $3, $4)", ad_account_id, utc_day, now, user_id
    )


# Campaigns -----------------------------------------------------------------------------------------


def _campaign(row: asyncpg.Record, holds: list[asyncpg.Record]) -> Campaign:
    return Campaign(
        id=row["id"], ad_account_id=row["ad_account_id"], business_center_id=row["business_center_id"], name=row["name"],
        funding_mode=row["funding_mode"], budget_kind=row["budget_kind"], budget_micros=row["budget_micros"],
        currency=row["currency"], status=Status(row["status"]),
        pause_cause=PauseCause(row["pause_cause"]) if row["pause_cause"] else None,
        starts_at=row["starts_at"], ends_at=row["ends_at"], version=row["version"], created_at=row["created_at"],
        payer_owner_id=row["payer_owner_id"], activation_requested=row["activation_requested"],
        delivered_micros=row["delivered_micros"], spent_micros=row["spent_micros"], open_invoice_id=row["open_invoice_id"],
        invoice_count=row["invoice_count"], settled=row["settled"],
        holds=tuple(
            Hold(hold["hold_id"], hold["seq"], hold["amount_micros"], HoldState(hold["state"]), hold["posted_micros"])
            for hold in sorted(holds, key=lambda hold: hold["seq"])
        ),
    )


async def find_campaign(conn: asyncpg.Connection, campaign_id: str, *, for_update: bool = False) -> Campaign | None:
    row = await conn.fetchrow("select * from campaigns where id = $1" + (" for update" if for_update else ""), campaign_id)
    if row is None:
        return None
    holds = await conn.fetch("select * from campaign_holds where campaign_id = $1", campaign_id)
    return _campaign(row, list(holds))


async def load_campaign(conn: asyncpg.Connection, campaign_id: str, *, for_update: bool = False) -> Campaign:
    campaign = await find_campaign(conn, campaign_id, for_update=for_update)
    if campaign is None:
        raise UnknownCampaignError(campaign_id)
    return campaign


async def campaign_id_of_hold(conn: asyncpg.Connection, hold_id: str) -> str | None:
    value = await conn.fetchval("select campaign_id from campaign_holds where hold_id = $1", hold_id)
    return str(value) if value is not None else None


async def campaign_id_of_invoice(conn: asyncpg.Connection, invoice_id: str) -> str | None:
    value = await conn.fetchval("select id from campaigns where open_invoice_id = $1", invoice_id)
    return str(value) if value is not None else None


async def campaign_ids_of_ad_account(conn: asyncpg.Connection, ad_account_id: str) -> list[str]:
    rows = await conn.fetch("select id from campaigns where ad_account_id = $1 order by id", ad_account_id)
    return [row["id"] for row in rows]


async def hold_error(conn: asyncpg.Connection, campaign_id: str) -> str | None:
    return await conn.fetchval("select hold_error from campaigns where id = $1", campaign_id)  # type: ignore[no-any-return]


async def insert_campaign(conn: asyncpg.Connection, campaign: Campaign, created_by_user_id: str) -> None:
    await conn.execute(
        """insert into campaigns (id, ad_account_id, business_center_id, name, funding_mode, budget_kind, budget_micros,
               currency, status, version, starts_at, ends_at, created_by_user_id, created_at, updated_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)""",
        campaign.id, campaign.ad_account_id, campaign.business_center_id, campaign.name, campaign.funding_mode,
        campaign.budget_kind, campaign.budget_micros, campaign.currency, campaign.status.value, campaign.version,
        campaign.starts_at, campaign.ends_at, created_by_user_id, campaign.created_at,
    )


async def save_campaign(conn: asyncpg.Connection, campaign: Campaign, now: datetime) -> None:
    await conn.execute(
        """update campaigns set name = $2, budget_micros = $3, status = $4, pause_cause = $5, version = $6,
               payer_owner_id = $7, activation_requested = $8, delivered_micros = $9, spent_micros = $10,
               open_invoice_id = $11, invoice_count = $12, settled = $13, updated_at = $14
           where id = $1""",
        campaign.id, campaign.name, campaign.budget_micros, campaign.status.value,
        campaign.pause_cause.value if campaign.pause_cause else None, campaign.version, campaign.payer_owner_id,
        campaign.activation_requested, campaign.delivered_micros, campaign.spent_micros, campaign.open_invoice_id,
        campaign.invoice_count, campaign.settled, now,
    )
    await conn.executemany(
        """insert into campaign_holds (hold_id, campaign_id, seq, amount_micros, state, posted_micros)
           values ($1, $2, $3, $4, $5, $6)
           on conflict (hold_id) do update set amount_micros = $4, state = $5, posted_micros = $6""",
        [(hold.hold_id, campaign.id, hold.seq, hold.amount_micros, hold.state.value, hold.posted_micros) for hold in campaign.holds],
    )


async def record_hold_error(conn: asyncpg.Connection, campaign_id: str, error: str) -> None:
    await conn.execute("update campaigns set hold_error = $2 where id = $1", campaign_id, error)


# Deadlines (C3, C4, T1) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DueDeadline:
    campaign_id: str
    kind: str
    due_at: datetime


async def schedule_deadline(conn: asyncpg.Connection, campaign_id: str, kind: str, due_at: datetime) -> None:
    await conn.execute(
        "insert into deadlines (campaign_id, kind, due_at) values ($1, $2, $3) on conflict do nothing", campaign_id, kind, due_at
    )


async def deadline_of(conn: asyncpg.Connection, campaign_id: str, kind: str) -> tuple[datetime, datetime | None, str | None] | None:
    row = await conn.fetchrow("select due_at, done_at, outcome from deadlines where campaign_id = $1 and kind = $2", campaign_id, kind)
    return (row["due_at"], row["done_at"], row["outcome"]) if row is not None else None


async def take_due_deadline(conn: asyncpg.Connection, now: datetime) -> DueDeadline | None:
    """The oldest due deadline no other transaction holds, locked for this one: a second instance
    skips it instead of waiting, and once this commits the row is done for everyone."""
    row = await conn.fetchrow(
        """select campaign_id, kind, due_at from deadlines
           where done_at is null and due_at <= $1
           order by due_at, campaign_id, kind
           limit 1
           for update skip locked""",
        now,
    )
    return DueDeadline(row["campaign_id"], row["kind"], row["due_at"]) if row is not None else None


async def mark_deadline_done(conn: asyncpg.Connection, deadline: DueDeadline, outcome: str, now: datetime) -> None:
    await conn.execute(
        "update deadlines set done_at = $3, outcome = $4 where campaign_id = $1 and kind = $2",
        deadline.campaign_id, deadline.kind, now, outcome,
    )
