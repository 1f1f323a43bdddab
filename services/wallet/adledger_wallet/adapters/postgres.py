"""The wallet's tables (schema `wallet`): Business Centers, ad accounts, payouts, day closes and
threshold states, behind `ports.store.WalletStore`. Who may do what is the platform's identity
(the library's replica tables); money is the shared ledger's, reached only through its port."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import asyncpg

from adledger_auth import replica
from adledger_ledger.owners import OwnerKind
from adledger_libs.outbox import UnitOfWork
from adledger_wallet.domain.model import AdAccount, AdAccountType, BillingOption, Budget, BudgetKind, BusinessCenter
from adledger_wallet.domain.payouts import Payout
from adledger_wallet.ports.store import (
    OutstandingPayout,
    Snapshot,
    UnknownAdAccountError,
    UnknownBusinessCenterError,
)


class PostgresWalletStore:
    """Implements `WalletStore` on one transaction's connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    def of(cls, uow: UnitOfWork) -> PostgresWalletStore:
        return cls(uow.conn)

    # Business Centers and ad accounts --------------------------------------------------------------

    async def load_business_center(self, business_center_id: str, *, for_update: bool = False) -> BusinessCenter:
        row = await self._conn.fetchrow(
            "select * from business_centers where id = $1" + (" for update" if for_update else ""), business_center_id
        )
        if row is None:
            raise UnknownBusinessCenterError(business_center_id)
        return BusinessCenter(
            id=row["id"],
            currency=row["currency"],
            aba_enabled=row["aba_enabled_at"] is not None,
            credit_limit_micros=row["credit_limit_micros"],
            finance_roles_enabled=await replica.finance_roles_set_up(self._conn, business_center_id),
            prepayment_threshold_micros=row["prepayment_threshold_micros"],
            last_payment_micros=row["last_payment_micros"],
        )

    async def business_center_name(self, business_center_id: str) -> str:
        return str(await self._conn.fetchval("select name from business_centers where id = $1", business_center_id))

    async def insert_business_center(self, business_center: BusinessCenter, name: str, now: datetime) -> bool:
        inserted = await self._conn.fetchval(
            "insert into business_centers (id, name, currency, credit_limit_micros, created_at)"
            " values ($1, $2, $3, $4, $5) on conflict (id) do nothing returning true",
            business_center.id, name, business_center.currency, business_center.credit_limit_micros, now,
        )
        return bool(inserted)

    async def mark_aba_enabled(self, business_center_id: str, now: datetime) -> None:
        await self._conn.execute("update business_centers set aba_enabled_at = $2 where id = $1", business_center_id, now)

    async def set_credit_limit(self, business_center_id: str, credit_limit_micros: int) -> None:
        await self._conn.execute(
            "update business_centers set credit_limit_micros = $2 where id = $1", business_center_id, credit_limit_micros
        )

    async def record_payment(self, business_center_id: str, amount_micros: int) -> None:
        await self._conn.execute(
            "update business_centers set last_payment_micros = $2 where id = $1", business_center_id, amount_micros
        )

    async def load_ad_account(self, ad_account_id: str) -> AdAccount:
        row = await self._conn.fetchrow("select * from ad_accounts where id = $1", ad_account_id)
        if row is None:
            raise UnknownAdAccountError(ad_account_id)
        return _ad_account(row)

    async def load_ad_accounts(self, business_center_id: str) -> list[AdAccount]:
        rows = await self._conn.fetch(
            "select * from ad_accounts where business_center_id = $1 order by id", business_center_id
        )
        return [_ad_account(row) for row in rows]

    async def insert_ad_account(self, ad_account: AdAccount, name: str, now: datetime) -> bool:
        budget = ad_account.budget
        inserted = await self._conn.fetchval(
            "insert into ad_accounts (id, business_center_id, name, type, billing_option, currency,"
            " budget_kind, budget_micros, budget_starts_on, budget_ends_on, created_at)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict (id) do nothing returning true",
            ad_account.id, ad_account.business_center_id, name, ad_account.type.value, ad_account.billing_option.value,
            ad_account.currency, budget.kind.value if budget else None, budget.amount_micros if budget else None,
            budget.starts_on if budget else None, budget.ends_on if budget else None, now,
        )
        return bool(inserted)

    async def save_budgets(self, accounts: Sequence[AdAccount]) -> None:
        for account in accounts:
            budget = account.budget
            await self._conn.execute(
                "update ad_accounts set budget_kind = $2, budget_micros = $3, budget_starts_on = $4,"
                " budget_ends_on = $5 where id = $1",
                account.id, budget.kind.value if budget else None, budget.amount_micros if budget else None,
                budget.starts_on if budget else None, budget.ends_on if budget else None,
            )

    async def copy_budget_cap(self, ad_account_id: str, budget: Budget, version: int) -> bool:
        updated = await self._conn.fetchval(
            "update ad_accounts set budget_kind = $2, budget_micros = $3, budget_starts_on = $4, budget_ends_on = $5,"
            " budget_version = $6 where id = $1 and budget_version < $6 returning true",
            ad_account_id, budget.kind.value, budget.amount_micros, budget.starts_on, budget.ends_on, version,
        )
        return bool(updated)

    async def owner_kind_of(self, owner_id: str) -> tuple[OwnerKind, str] | None:
        if await self._conn.fetchval("select exists(select 1 from business_centers where id = $1)", owner_id):
            return "business_center", owner_id
        business_center_id = await self._conn.fetchval(
            "select business_center_id from ad_accounts where id = $1", owner_id
        )
        if business_center_id is not None:
            return "ad_account", str(business_center_id)
        return None

    async def user_exists(self, user_id: str) -> bool:
        found = await replica.user(self._conn, user_id)
        return found is not None and not found.disabled

    # Payouts (W14) ----------------------------------------------------------------------------------

    async def insert_payout(self, payout: Payout, now: datetime) -> None:
        await self._conn.execute(
            """insert into payouts (id, payer_kind, payer_id, payee_account_id, amount_micros, currency, code, requested_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing""",
            payout.id, payout.payer_kind, payout.payer_id, payout.payee_account_id, payout.amount_micros,
            payout.currency, payout.code, now,
        )

    async def outstanding_payouts(self, payer_id: str) -> list[OutstandingPayout]:
        rows = await self._conn.fetch(
            """select id, payee_account_id, amount_micros, currency, code from payouts
               where payer_id = $1 and paid_at is null order by queued for update""",
            payer_id,
        )
        return [OutstandingPayout(**dict(row)) for row in rows]

    async def mark_payouts_paid(self, payout_ids: Sequence[str], now: datetime) -> None:
        await self._conn.execute("update payouts set paid_at = $2 where id = any($1::text[])", list(payout_ids), now)

    async def payout_paid(self, payout_id: str) -> bool:
        return bool(await self._conn.fetchval("select paid_at is not null from payouts where id = $1", payout_id))

    # Day closes (W13) ------------------------------------------------------------------------------

    async def last_day_closed(self) -> date | None:
        day: date | None = await self._conn.fetchval("select max(day) from day_closes")
        return day

    async def first_business_center_opened_at(self) -> datetime | None:
        opened: datetime | None = await self._conn.fetchval("select min(created_at) from business_centers")
        return opened

    async def lock_day_closes(self) -> None:
        await self._conn.execute("select pg_advisory_xact_lock(hashtext('wallet-day-close:' || current_schema()))")

    async def day_closed(self, day: date) -> bool:
        return bool(await self._conn.fetchval("select exists(select 1 from day_closes where day = $1)", day))

    async def owners_opened_before(self, instant: datetime) -> list[tuple[OwnerKind, str, str]]:
        rows = await self._conn.fetch(
            "select id, 'business_center' as kind, currency from business_centers where created_at < $1"
            " union all select id, 'ad_account' as kind, currency from ad_accounts where created_at < $1"
            " order by id",
            instant,
        )
        return [(row["kind"], row["id"], row["currency"]) for row in rows]

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        await self._conn.executemany(
            "insert into balance_snapshots (owner_id, owner_kind, day, currency, real_micros, virtual_micros, taken_at)"
            " values ($1, $2, $3, $4, $5, $6, $7) on conflict (owner_id, day) do nothing",
            [(item.owner_id, item.owner_kind, item.day, item.currency, item.real_micros, item.virtual_micros, item.taken_at)
             for item in snapshots],
        )

    async def mark_day_closed(self, day: date, now: datetime) -> None:
        await self._conn.execute(
            "insert into day_closes (day, closed_at) values ($1, $2) on conflict do nothing", day, now
        )

    async def history(self, owner_id: str, from_day: date | None, to_day: date | None) -> list[Snapshot]:
        rows = await self._conn.fetch(
            "select owner_id, owner_kind, day, currency, real_micros, virtual_micros, taken_at from balance_snapshots"
            " where owner_id = $1 and ($2::date is null or day >= $2) and ($3::date is null or day <= $3) order by day",
            owner_id, from_day, to_day,
        )
        return [Snapshot(**dict(row)) for row in rows]

    # Prepayment thresholds (W12) ----------------------------------------------------------------------

    async def business_center_exists(self, business_center_id: str) -> bool:
        return bool(await self._conn.fetchval("select exists(select 1 from business_centers where id = $1)", business_center_id))

    async def threshold_state(self, owner_id: str, now: datetime) -> tuple[bool, int]:
        await self._conn.execute(
            "insert into prepayment_threshold_states (owner_id, below, changed_at, version) values ($1, false, $2, 0)"
            " on conflict (owner_id) do nothing",
            owner_id, now,
        )
        row = await self._conn.fetchrow(
            "select below, version from prepayment_threshold_states where owner_id = $1 for update", owner_id
        )
        return bool(row["below"]), int(row["version"])

    async def save_threshold_state(self, owner_id: str, below: bool, version: int, now: datetime) -> None:
        await self._conn.execute(
            "update prepayment_threshold_states set below = $2, version = $3,"
            " changed_at = case when below = $2 then changed_at else $4 end where owner_id = $1",
            owner_id, below, version, now,
        )


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


async def move_legacy_payouts(conn: asyncpg.Connection, ledger_schema: str) -> int:
    """Once: payouts used to sit in the ledger's schema (a business table in the ledger, issue 13);
    the ledger's migration 0005 renamed that table `payouts_legacy`, and its rows move here."""
    exists = await conn.fetchval("select to_regclass($1) is not null", f"{ledger_schema}.payouts_legacy")
    if not exists:
        return 0
    async with conn.transaction():
        moved = await conn.execute(
            f"""insert into payouts (id, payer_kind, payer_id, payee_account_id, amount_micros, currency, code,
                                     requested_at, paid_at)
                select id, payer_kind, payer_id, payee_account_id, amount_micros, currency, code, requested_at, paid_at
                from {ledger_schema}.payouts_legacy order by requested_at, id on conflict (id) do nothing"""
        )
        await conn.execute(f"drop table {ledger_schema}.payouts_legacy")
    return int(moved.split()[-1])
