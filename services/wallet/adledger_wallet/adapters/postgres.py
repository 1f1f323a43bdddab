"""The wallet's tables (schema `wallet`): users, Business Centers, memberships, ad accounts."""

from __future__ import annotations

import hashlib
from datetime import datetime

import asyncpg

from adledger_wallet.domain.model import AdAccount, AdAccountType, BillingOption, Budget, BudgetKind, BusinessCenter
from adledger_wallet.domain.roles import Role, User


class UnknownBusinessCenterError(LookupError):
    def __init__(self, business_center_id: str) -> None:
        super().__init__(f"no Business Center {business_center_id!r}")
        self.business_center_id = business_center_id


class UnknownAdAccountError(LookupError):
    def __init__(self, ad_account_id: str) -> None:
        super().__init__(f"no ad account {ad_account_id!r}")
        self.ad_account_id = ad_account_id


class UnknownUserError(LookupError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user {user_id!r}")
        self.user_id = user_id


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def user_by_token(conn: asyncpg.Connection, token: str) -> tuple[User, bool] | None:
    """The user a bearer token belongs to, with their roles, and whether they operate the platform."""
    row = await conn.fetchrow("select id, platform_operator from users where token_sha256 = $1", token_digest(token))
    if row is None:
        return None
    return await user_with_roles(conn, row["id"]), bool(row["platform_operator"])


async def user_with_roles(conn: asyncpg.Connection, user_id: str) -> User:
    rows = await conn.fetch("select business_center_id, role from memberships where user_id = $1", user_id)
    roles: dict[str, set[Role]] = {}
    for row in rows:
        roles.setdefault(row["business_center_id"], set()).add(Role(row["role"]))
    return User(user_id, {bc: frozenset(found) for bc, found in roles.items()})


async def insert_user(conn: asyncpg.Connection, user_id: str, name: str, token: str, *, platform_operator: bool, now: datetime) -> None:
    await conn.execute(
        "insert into users (id, name, token_sha256, platform_operator, created_at) values ($1, $2, $3, $4, $5)"
        " on conflict (id) do nothing",
        user_id,
        name,
        token_digest(token),
        platform_operator,
        now,
    )


async def require_user(conn: asyncpg.Connection, user_id: str) -> None:
    if not await conn.fetchval("select exists(select 1 from users where id = $1)", user_id):
        raise UnknownUserError(user_id)


async def load_business_center(conn: asyncpg.Connection, business_center_id: str, *, for_update: bool = False) -> BusinessCenter:
    row = await conn.fetchrow(
        "select bc.*, exists(select 1 from memberships m where m.business_center_id = bc.id"
        " and m.role = 'finance_manager') as finance_roles_enabled"
        " from business_centers bc where bc.id = $1" + (" for update of bc" if for_update else ""),
        business_center_id,
    )
    if row is None:
        raise UnknownBusinessCenterError(business_center_id)
    return BusinessCenter(
        id=row["id"],
        currency=row["currency"],
        aba_enabled=row["aba_enabled_at"] is not None,
        credit_limit_micros=row["credit_limit_micros"],
        finance_roles_enabled=row["finance_roles_enabled"],
        prepayment_threshold_micros=row["prepayment_threshold_micros"],
        last_payment_micros=row["last_payment_micros"],
    )


async def business_center_name(conn: asyncpg.Connection, business_center_id: str) -> str:
    return str(await conn.fetchval("select name from business_centers where id = $1", business_center_id))


async def insert_business_center(conn: asyncpg.Connection, business_center: BusinessCenter, name: str, now: datetime) -> bool:
    inserted = await conn.fetchval(
        "insert into business_centers (id, name, currency, credit_limit_micros, created_at)"
        " values ($1, $2, $3, $4, $5) on conflict (id) do nothing returning true",
        business_center.id,
        name,
        business_center.currency,
        business_center.credit_limit_micros,
        now,
    )
    return bool(inserted)


async def add_membership(conn: asyncpg.Connection, business_center_id: str, user_id: str, role: Role) -> None:
    await conn.execute(
        "insert into memberships (business_center_id, user_id, role) values ($1, $2, $3) on conflict do nothing",
        business_center_id,
        user_id,
        role.value,
    )


async def mark_aba_enabled(conn: asyncpg.Connection, business_center_id: str, now: datetime) -> None:
    await conn.execute("update business_centers set aba_enabled_at = $2 where id = $1", business_center_id, now)


async def set_credit_limit(conn: asyncpg.Connection, business_center_id: str, credit_limit_micros: int) -> None:
    await conn.execute(
        "update business_centers set credit_limit_micros = $2 where id = $1", business_center_id, credit_limit_micros
    )


async def record_payment(conn: asyncpg.Connection, business_center_id: str, amount_micros: int) -> None:
    await conn.execute("update business_centers set last_payment_micros = $2 where id = $1", business_center_id, amount_micros)


def _ad_account(row: asyncpg.Record) -> AdAccount:
    budget = None
    if row["budget_kind"] is not None:
        budget = Budget(BudgetKind(row["budget_kind"]), row["budget_micros"], row["budget_starts_on"], row["budget_ends_on"])
    return AdAccount(
        id=row["id"],
        business_center_id=row["business_center_id"],
        type=AdAccountType(row["type"]),
        billing_option=BillingOption(row["billing_option"]),
        currency=row["currency"],
        budget=budget,
    )


async def load_ad_account(conn: asyncpg.Connection, ad_account_id: str) -> AdAccount:
    row = await conn.fetchrow("select * from ad_accounts where id = $1", ad_account_id)
    if row is None:
        raise UnknownAdAccountError(ad_account_id)
    return _ad_account(row)


async def load_ad_accounts(conn: asyncpg.Connection, business_center_id: str) -> list[AdAccount]:
    rows = await conn.fetch("select * from ad_accounts where business_center_id = $1 order by id", business_center_id)
    return [_ad_account(row) for row in rows]


async def insert_ad_account(conn: asyncpg.Connection, ad_account: AdAccount, name: str, now: datetime) -> bool:
    budget = ad_account.budget
    inserted = await conn.fetchval(
        "insert into ad_accounts (id, business_center_id, name, type, billing_option, currency,"
        " budget_kind, budget_micros, budget_starts_on, budget_ends_on, created_at)"
        " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict (id) do nothing returning true",
        ad_account.id,
        ad_account.business_center_id,
        name,
        ad_account.type.value,
        ad_account.billing_option.value,
        ad_account.currency,
        budget.kind.value if budget else None,
        budget.amount_micros if budget else None,
        budget.starts_on if budget else None,
        budget.ends_on if budget else None,
        now,
    )
    return bool(inserted)


async def save_budgets(conn: asyncpg.Connection, accounts: list[AdAccount]) -> None:
    for account in accounts:
        budget = account.budget
        await conn.execute(
            "update ad_accounts set budget_kind = $2, budget_micros = $3, budget_starts_on = $4, budget_ends_on = $5"
            " where id = $1",
            account.id,
            budget.kind.value if budget else None,
            budget.amount_micros if budget else None,
            budget.starts_on if budget else None,
            budget.ends_on if budget else None,
        )


async def owner_kind_of(conn: asyncpg.Connection, owner_id: str) -> tuple[str, str] | None:
    """('business_center', its id) or ('ad_account', its Business Center's id), or None."""
    if await conn.fetchval("select exists(select 1 from business_centers where id = $1)", owner_id):
        return "business_center", owner_id
    business_center_id = await conn.fetchval("select business_center_id from ad_accounts where id = $1", owner_id)
    if business_center_id is not None:
        return "ad_account", str(business_center_id)
    return None


async def copy_budget_cap(conn: asyncpg.Connection, ad_account_id: str, budget: Budget, version: int) -> bool:
    """Keep the campaign service's cap of an ad account (the newest version wins); False when the
    account is not this wallet's or the copy is already as new."""
    updated = await conn.fetchval(
        "update ad_accounts set budget_kind = $2, budget_micros = $3, budget_starts_on = $4, budget_ends_on = $5,"
        " budget_version = $6 where id = $1 and budget_version < $6 returning true",
        ad_account_id, budget.kind.value, budget.amount_micros, budget.starts_on, budget.ends_on, version,
    )
    return bool(updated)
