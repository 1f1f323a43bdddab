"""A synthetic ledger, generated set-based, for the audit's benchmark and tests.

A million transfers through the domain would take minutes; here they are made by a few
`generate_series` statements in a schema of their own. The accounts are opened through the real
`PostgresLedger.create_accounts` (owners as `owners.py` lays them out, system accounts per
currency). The transfers follow the domain's shapes in a fixed pattern of ten per group: three
payments in, two spends, a hold that is posted in part, voided or left open, a hold that expired,
a voucher grant and a voucher spend. The resolutions and the expiry queue are written to match,
then every account's totals are set from its transfers with the domain's semantics, and every
owner gets a published version 1, so the result is a healthy ledger the audit must pass.

Never run against a live ledger: it refuses the schema `ledger` and any schema that already has
transfers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from adledger_libs.db import checked_schema

from .audit import movements_sql
from .owners import OwnerKind, owner_accounts, system_accounts
from .postgres import PostgresLedger

CURRENCIES = ("USD", "EUR")
#: The transfers of one group, in order (the slot is the transfer's number modulo 10).
PATTERN = (
    "payment",
    "payment",
    "payment",
    "spend",
    "spend",
    "hold",
    "post, void or spend",
    "expired hold",
    "voucher grant",
    "voucher spend",
)


@dataclass(frozen=True)
class SyntheticLedger:
    schema: str
    transfers: int
    owners: tuple[tuple[OwnerKind, str], ...]


def owner_id(number: int) -> str:
    return f"syn-{number}"


async def generate(
    conn: asyncpg.Connection, schema: str, *, transfers: int, owners: int, now: datetime
) -> SyntheticLedger:
    """Fill the (migrated, empty) ledger in `schema` with `transfers` transfers among `owners` ad accounts."""
    schema = checked_schema(schema)
    if schema == "ledger":
        raise ValueError("the synthetic ledger is never generated into the live schema `ledger`")
    if transfers < 10 or owners < 1:
        raise ValueError("at least one group of ten transfers and one owner")
    if await conn.fetchval(f"select exists (select 1 from {schema}.transfers)"):
        raise ValueError(f"{schema} already holds transfers")
    ledger = PostgresLedger(schema)
    owner_list: list[tuple[OwnerKind, str]] = [("ad_account", owner_id(number)) for number in range(owners)]
    accounts = [account for currency in CURRENCIES for account in system_accounts(currency)]
    for number in range(owners):
        accounts += owner_accounts("ad_account", owner_id(number), CURRENCIES[number % len(CURRENCIES)])
    async with conn.transaction():
        # Every owner is registered with its kind before its accounts open, as the services do.
        await conn.execute(
            f"""insert into {schema}.owners (owner_id, kind)
                select 'syn-' || n, 'ad_account' from generate_series(0, $1 - 1) as n""",
            owners,
        )
        await ledger.create_accounts(conn, accounts)
    async with conn.transaction():
        # Checking three foreign keys and updating three indexes row by row is most of the cost
        # of a million inserts: they are set aside and made again afterwards from their own
        # definitions (so nothing here restates the migrations), validated over the whole table.
        deferred = []
        for table in ("transfers", "pending_resolutions"):
            deferred += await _set_aside_foreign_keys_and_indexes(conn, schema, table)
        await _generate_transfers(conn, schema, transfers, owners, now)
        for statement in deferred:
            await conn.execute(statement)
        await _set_totals(conn, schema)
        await conn.execute(
            f"""insert into {schema}.owner_versions (owner_id, owner_kind, version, updated_at)
                select 'syn-' || n, 'ad_account', 1, $2 from generate_series(0, $1 - 1) as n""",
            owners,
            now,
        )
    await conn.execute(f"analyze {schema}.accounts, {schema}.transfers, {schema}.pending_resolutions")
    return SyntheticLedger(schema, transfers, tuple(owner_list))


async def _set_aside_foreign_keys_and_indexes(conn: asyncpg.Connection, schema: str, name: str) -> list[str]:
    """Drop the foreign keys and secondary indexes of a table; return the statements that make them again."""
    table = f"{schema}.{name}"
    foreign_keys = await conn.fetch(
        "select conname, pg_get_constraintdef(oid) as definition from pg_constraint"
        " where conrelid = $1::regclass and contype = 'f' order by conname",
        table,
    )
    indexes = await conn.fetch(
        "select i.relname as name, pg_get_indexdef(x.indexrelid) as definition from pg_index x"
        " join pg_class i on i.oid = x.indexrelid where x.indrelid = $1::regclass and not x.indisprimary"
        " and not x.indisunique order by i.relname",
        table,
    )
    for row in foreign_keys:
        await conn.execute(f'alter table {table} drop constraint "{row["conname"]}"')
    for row in indexes:
        await conn.execute(f'drop index {schema}."{row["name"]}"')
    return [row["definition"] for row in indexes] + [
        f'alter table {table} add constraint "{row["conname"]}" {row["definition"]}' for row in foreign_keys
    ]


async def _generate_transfers(
    conn: asyncpg.Connection, schema: str, transfers: int, owners: int, now: datetime
) -> None:
    # Transfer i belongs to group i / 10 and owner (i / 10) % owners, whose currency alternates;
    # its slot (i % 10) is its place in PATTERN. Every owner gets whole groups, so its cash and
    # vouchers are always covered (the accounts' guards hold). Times increase with i, a second apart.
    await conn.execute(
        f"""insert into {schema}.transfers (id, debit_account_id, credit_account_id, amount_micros, currency, code,
                kind, pending_id, expires_at, created_at)
            select 'syn:' || i,
                   case slot when 0 then world when 1 then world when 2 then world
                             when 8 then vouchers_source when 9 then vouchers else cash end,
                   case slot when 0 then cash when 1 then cash when 2 then cash
                             when 8 then vouchers else revenue end,
                   case slot when 0 then 1000000 + i % 7 * 1000 when 1 then 1000000 when 2 then 2000000
                             when 3 then 10000 + i % 13 when 4 then 20000
                             when 5 then 50000
                             when 6 then case grp % 3 when 1 then 30000 when 2 then 50000 else 10000 end
                             when 7 then 40000 when 8 then 20000 else 5000 end,
                   currency,
                   case slot when 5 then 'hold' when 7 then 'hold' when 8 then 'voucher_grant'
                             when 0 then 'payment_received' when 1 then 'payment_received'
                             when 2 then 'payment_received' else 'spend' end,
                   case when slot in (5, 7) then 'pending'
                        when slot = 6 and grp % 3 = 1 then 'post_pending'
                        when slot = 6 and grp % 3 = 2 then 'void_pending'
                        else 'single' end,
                   case when slot = 6 and grp % 3 <> 0 then 'syn:' || (i - 1) end,
                   case when slot = 5 and grp % 2 = 0 then $3::timestamptz + interval '1 day'
                        when slot = 7 then $3::timestamptz - interval '1 hour' end,
                   $3::timestamptz - ($1::bigint - i) * interval '1 second'
            from (
                select i, i % 10 as slot, i / 10 as grp, currency,
                       'system/world_payments/' || currency as world,
                       'system/platform_revenue/' || currency as revenue,
                       'system/platform_vouchers/' || currency as vouchers_source,
                       'ad/syn-' || owner || '/cash' as cash,
                       'ad/syn-' || owner || '/vouchers' as vouchers
                from (
                    select i, (i / 10) % $2::bigint as owner,
                           case when (i / 10) % $2::bigint % 2 = 0 then 'USD' else 'EUR' end as currency
                    from generate_series(0, $1::bigint - 1) as i
                ) numbered
            ) shaped""",
        transfers,
        owners,
        now,
    )
    # Slot 6 posted or voided the hold before it; slot 7's hold expired an hour ago.
    await conn.execute(
        f"""insert into {schema}.pending_resolutions (pending_id, kind, resolving_transfer_id, resolved_at)
            select t.pending_id, case t.kind when 'post_pending' then 'posted' else 'voided' end, t.id, t.created_at
            from {schema}.transfers t where t.pending_id is not null
            union all
            select t.id, 'expired', null, t.expires_at
            from {schema}.transfers t where t.kind = 'pending' and t.expires_at < $1::timestamptz""",
        now,
    )
    await conn.execute(
        f"""insert into {schema}.pending_expiries (pending_id, expires_at)
            select t.id, t.expires_at from {schema}.transfers t
            where t.kind = 'pending' and t.expires_at is not null
              and not exists (select 1 from {schema}.pending_resolutions r where r.pending_id = t.id)"""
    )


async def _set_totals(conn: asyncpg.Connection, schema: str) -> None:
    """Each account's totals from its transfers, with the audit's own reading of them."""
    await conn.execute(
        f"""with movements as ({movements_sql(schema)}),
            totals as (
                select account_id, sum(debits_posted) as debits_posted, sum(credits_posted) as credits_posted,
                       sum(debits_pending) as debits_pending, sum(credits_pending) as credits_pending
                from movements group by account_id)
            update {schema}.accounts a set
                debits_posted_micros = totals.debits_posted, credits_posted_micros = totals.credits_posted,
                debits_pending_micros = totals.debits_pending, credits_pending_micros = totals.credits_pending
            from totals where totals.account_id = a.id"""
    )
