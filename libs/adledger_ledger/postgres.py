"""The ledger in PostgreSQL: loads what a batch touches, asks the domain, stores the answer.

Every method runs on the caller's connection, inside the caller's database transaction (a
`UnitOfWork.conn`), so the money moves in the same transaction as the service's own effects.

Concurrency. The accounts a batch changes are locked with `SELECT ... FOR UPDATE` in one fixed
order (sorted by id), so parallel writers queue on the rows they share and never deadlock one
another; the state the domain sees is read after those locks are held, so no update is lost.
This relies on the READ COMMITTED isolation level (PostgreSQL's default): each statement after
the lock sees what the previous holder committed. Two rules for callers follow from it:
call `create_transfers` or `expire_pending` once per database transaction (a second call
would take a second round of locks, out of order with the first), and let the unit of work
retry a transaction that failed with a serialization or unique violation (two callers that
used one id for two different transfers at the same moment: the retry gets the
`IdempotencyConflictError`).

Throughput. A batch costs a fixed number of statements, whatever its size: every write is one
set-based statement over `unnest` arrays, never one statement per row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from importlib.resources import files
from typing import Any

import asyncpg

from adledger_libs.db import checked_schema

from .domain import (
    Account,
    OwnerIdTakenError,
    PendingResolution,
    ResolutionKind,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferResult,
    apply_transfers,
    expire_pending,
    open_accounts,
)

#: The ledger's migrations; a service migrates them into schema `ledger` with
#: `adledger_libs.db.migrate(conn, "ledger", [("adledger_ledger", LEDGER_MIGRATIONS)])`.
LEDGER_MIGRATIONS = files("adledger_ledger") / "migrations"

_ACCOUNT_COLUMNS = (
    "id, currency, code, owner_id, debits_must_not_exceed_credits, credits_must_not_exceed_debits,"
    " debits_posted_micros, credits_posted_micros, debits_pending_micros, credits_pending_micros"
)
_TRANSFER_COLUMNS = (
    "t.id, t.debit_account_id, t.credit_account_id, t.amount_micros, t.currency, t.code, t.kind, t.pending_id,"
    " t.expires_at, t.user_data::text as user_data, t.created_at,"
    " r.kind as resolution_kind, r.resolving_transfer_id, r.resolved_at"
)


class PostgresLedger:
    """Implements `ports.Ledger` with asyncpg connections as sessions.

    `schema` is where the ledger's tables are: `ledger` in production, a unique one per test.
    The names are qualified with it, so the services' own schema can stay on the search_path.
    """

    def __init__(self, schema: str = "ledger", *, expiry_batch_size: int = 10_000) -> None:
        self.schema = checked_schema(schema)
        self._expiry_batch_size = expiry_batch_size
        ledger = self.schema
        self._select_accounts = f"select {_ACCOUNT_COLUMNS} from {ledger}.accounts where id = any($1::text[])"
        # ORDER BY before FOR UPDATE: the rows are locked in the sorted order, which is what
        # makes parallel batches deadlock-free.
        self._lock_accounts = (
            f"select {_ACCOUNT_COLUMNS} from {ledger}.accounts where id = any($1::text[]) order by id for update"
        )
        self._select_transfers = (
            f"select {_TRANSFER_COLUMNS} from {ledger}.transfers t"
            f" left join {ledger}.pending_resolutions r on r.pending_id = t.id where t.id = any($1::text[])"
        )
        self._insert_accounts = f"""
            insert into {ledger}.accounts (id, currency, code, owner_id,
                debits_must_not_exceed_credits, credits_must_not_exceed_debits)
            select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::boolean[])
            on conflict (id) do nothing
            returning id"""
        self._insert_transfers = f"""
            insert into {ledger}.transfers (id, debit_account_id, credit_account_id, amount_micros, currency, code,
                kind, pending_id, expires_at, user_data, created_at)
            select id, debit_account_id, credit_account_id, amount_micros, currency, code,
                kind, pending_id, expires_at, user_data::jsonb, created_at
            from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::timestamptz[])
                as new (id, debit_account_id, credit_account_id, amount_micros, currency, code,
                    kind, pending_id, expires_at, user_data, created_at)"""
        self._insert_resolutions = f"""
            insert into {ledger}.pending_resolutions (pending_id, kind, resolving_transfer_id, resolved_at)
            select * from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"""
        self._insert_expiries = f"""
            insert into {ledger}.pending_expiries (pending_id, expires_at)
            select * from unnest($1::text[], $2::timestamptz[])"""
        self._delete_expiries = f"delete from {ledger}.pending_expiries where pending_id = any($1::text[])"
        self._select_due = (
            f"select pending_id from {ledger}.pending_expiries where expires_at <= $1 order by expires_at, pending_id"
            " limit $2"
        )
        self._update_accounts = f"""
            update {ledger}.accounts as account set
                debits_posted_micros = new.debits_posted_micros,
                credits_posted_micros = new.credits_posted_micros,
                debits_pending_micros = new.debits_pending_micros,
                credits_pending_micros = new.credits_pending_micros
            from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
                as new (id, debits_posted_micros, credits_posted_micros, debits_pending_micros, credits_pending_micros)
            where account.id = new.id"""

    # ----------------------------------------------------------------------------------------
    # Ledger port
    # ----------------------------------------------------------------------------------------

    async def create_accounts(self, session: asyncpg.Connection, accounts: Sequence[Account]) -> list[Account]:
        _require_transaction(session)
        if not accounts:
            return []
        account_ids = sorted({account.id for account in accounts})
        existing = await self._fetch_accounts(session, self._select_accounts, account_ids)
        opening = open_accounts(existing, accounts)
        if opening.new_accounts:
            new = opening.new_accounts
            inserted = await session.fetch(
                self._insert_accounts,
                [account.id for account in new],
                [account.currency for account in new],
                [account.code for account in new],
                [account.owner_id for account in new],
                [account.debits_must_not_exceed_credits for account in new],
                [account.credits_must_not_exceed_debits for account in new],
            )
            lost_race = {account.id for account in new} - {row["id"] for row in inserted}
            if lost_race:
                # Another transaction created some of them meanwhile: check its definitions
                # are ours, with the same domain rule, now that they exist.
                concurrent = await self._fetch_accounts(session, self._select_accounts, sorted(lost_race))
                open_accounts(concurrent, [account for account in new if account.id in lost_race])
        stored = await self._fetch_accounts(session, self._select_accounts, account_ids)
        return [stored[account.id] for account in opening.accounts]

    async def create_transfers(
        self, session: asyncpg.Connection, requests: Sequence[TransferRequest], now: datetime
    ) -> list[TransferResult]:
        _require_transaction(session)
        if not requests:
            return []
        request_ids = list(dict.fromkeys(request.id for request in requests))
        pending_ids = list(dict.fromkeys(request.pending_id for request in requests if request.pending_id is not None))
        # Transfers never change, so the pending transfers can be read before any lock: they
        # only tell which accounts the batch touches. Their resolution is re-read under the locks.
        known_pending = await self._fetch_transfers(session, pending_ids) if pending_ids else {}
        account_ids: set[str] = set()
        for request in requests:
            account_ids.update(
                account_id
                for account_id in (request.debit_account_id, request.credit_account_id)
                if account_id is not None
            )
        for pending in known_pending.values():
            account_ids.update((pending.debit_account_id, pending.credit_account_id))
        # Only locked accounts reach the domain: an account it is not given, it cannot change.
        accounts = await self._fetch_accounts(session, self._lock_accounts, sorted(account_ids))
        # Pending transfers that appeared after the first read are left out on purpose: their
        # accounts are not locked. The request then fails as if it had come a moment earlier.
        transfers = await self._fetch_transfers(session, request_ids + list(known_pending))
        outcome = apply_transfers(accounts, transfers, requests, now)
        await self._insert_new_transfers(session, outcome.new_transfers)
        await self._store_resolutions(session, outcome.new_resolutions)
        await self._store_balances(session, outcome.changed_accounts)
        return list(outcome.results)

    async def register_owner(self, session: asyncpg.Connection, owner_id: str, kind: str) -> None:
        _require_transaction(session)
        taken = await session.fetchval(
            f"""with new as (insert into {self.schema}.owners (owner_id, kind) values ($1, $2)
                             on conflict (owner_id) do nothing returning kind)
                select coalesce((select kind from new), (select kind from {self.schema}.owners where owner_id = $1))""",
            owner_id, kind,
        )
        if taken != kind:
            raise OwnerIdTakenError(owner_id, kind, str(taken))

    async def expire_pending(self, session: asyncpg.Connection, now: datetime) -> list[Transfer]:
        _require_transaction(session)
        due_ids = [row["pending_id"] for row in await session.fetch(self._select_due, now, self._expiry_batch_size)]
        if not due_ids:
            return []
        # No lock on the queue rows: a post holds the account locks first and then deletes its
        # queue row, so taking the queue rows first here could deadlock with it.
        candidates = await self._fetch_transfers(session, due_ids)
        account_ids = sorted(
            {transfer.debit_account_id for transfer in candidates.values()}
            | {transfer.credit_account_id for transfer in candidates.values()}
        )
        accounts = await self._fetch_accounts(session, self._lock_accounts, account_ids)
        # Re-read under the locks: a post or another sweep may have resolved some meanwhile.
        current = await self._fetch_transfers(session, due_ids)
        outcome = expire_pending(accounts, list(current.values()), now)
        await self._store_resolutions(session, outcome.new_resolutions)
        # Holds that something else resolved meanwhile leave the queue as well.
        already_resolved = [transfer.id for transfer in current.values() if transfer.resolution is not None]
        if already_resolved:
            await session.execute(self._delete_expiries, already_resolved)
        await self._store_balances(session, outcome.changed_accounts)
        return list(outcome.expired)

    async def next_expiry(self, session: asyncpg.Connection | asyncpg.Pool) -> datetime | None:
        """When the earliest unresolved hold expires (the sandbox clock stops there, issue 17)."""
        due: datetime | None = await session.fetchval(f"select min(expires_at) from {self.schema}.pending_expiries")
        return due

    async def bump_balance_versions(
        self, session: asyncpg.Connection, owners: Sequence[tuple[str, str]], now: datetime
    ) -> dict[str, int]:
        """Give each (owner kind, owner id) its next balance version and lock it until commit."""
        _require_transaction(session)
        rows = await session.fetch(
            f"""insert into {self.schema}.owner_versions as v (owner_id, owner_kind, version, updated_at)
                select owner_id, owner_kind, 1, $3 from unnest($1::text[], $2::text[]) as n(owner_id, owner_kind)
                on conflict (owner_id) do update set version = v.version + 1, updated_at = excluded.updated_at
                returning owner_id, version""",
            [owner for _, owner in owners], [kind for kind, _ in owners], now,
        )
        return {row["owner_id"]: row["version"] for row in rows}

    async def balance_version(self, session: asyncpg.Connection, owner_id: str) -> int | None:
        """The version of the owner's newest published balance, or None before the first."""
        version = await session.fetchval(f"select version from {self.schema}.owner_versions where owner_id = $1", owner_id)
        return int(version) if version is not None else None

    async def balances_as_of(
        self, session: asyncpg.Connection, account_ids: Sequence[str], instant: datetime
    ) -> dict[str, tuple[int, int]]:
        """(posted balance, debits held) per account as they stood at `instant`, from the immutable
        transfers created before it (never the running totals), so a late reader gets the past:
        posted = credits − debits of `single` and `post_pending` transfers; held = `pending`
        debits created before `instant` whose resolution (post, void, expiry) came at or after it.
        Accounts without transfers answer (0, 0)."""
        ledger = self.schema
        rows = await session.fetch(
            f"""with moves as (
                    select credit_account_id as account_id, amount_micros as posted, 0::bigint as held
                      from {ledger}.transfers where kind in ('single', 'post_pending') and created_at < $2
                       and credit_account_id = any($1::text[])
                    union all
                    select debit_account_id, -amount_micros, 0
                      from {ledger}.transfers where kind in ('single', 'post_pending') and created_at < $2
                       and debit_account_id = any($1::text[])
                    union all
                    select t.debit_account_id, 0, t.amount_micros
                      from {ledger}.transfers t left join {ledger}.pending_resolutions r on r.pending_id = t.id
                     where t.kind = 'pending' and t.created_at < $2 and t.debit_account_id = any($1::text[])
                       and (r.pending_id is null or r.resolved_at >= $2)
                )
                select account_id, sum(posted)::bigint as posted, sum(held)::bigint as held from moves group by account_id""",
            list(account_ids), instant,
        )
        figures = {account_id: (0, 0) for account_id in account_ids}
        figures.update({row["account_id"]: (row["posted"], row["held"]) for row in rows})
        return figures

    async def balances(self, session: asyncpg.Connection, account_ids: Sequence[str]) -> dict[str, Account]:
        return await self._fetch_accounts(session, self._select_accounts, list(account_ids))

    async def lookup_transfers(self, session: asyncpg.Connection, transfer_ids: Sequence[str]) -> dict[str, Transfer]:
        return await self._fetch_transfers(session, list(transfer_ids))

    # ----------------------------------------------------------------------------------------
    # Reading and writing rows
    # ----------------------------------------------------------------------------------------

    async def _fetch_accounts(
        self, session: asyncpg.Connection, query: str, account_ids: list[str]
    ) -> dict[str, Account]:
        if not account_ids:
            return {}
        rows = await session.fetch(query, account_ids)
        return {row["id"]: _account_from_row(row) for row in rows}

    async def _fetch_transfers(self, session: asyncpg.Connection, transfer_ids: list[str]) -> dict[str, Transfer]:
        if not transfer_ids:
            return {}
        rows = await session.fetch(self._select_transfers, transfer_ids)
        return {row["id"]: _transfer_from_row(row) for row in rows}

    async def _insert_new_transfers(self, session: asyncpg.Connection, transfers: Sequence[Transfer]) -> None:
        if not transfers:
            return
        await session.execute(
            self._insert_transfers,
            [transfer.id for transfer in transfers],
            [transfer.debit_account_id for transfer in transfers],
            [transfer.credit_account_id for transfer in transfers],
            [transfer.amount_micros for transfer in transfers],
            [transfer.currency for transfer in transfers],
            [transfer.code for transfer in transfers],
            [transfer.kind.value for transfer in transfers],
            [transfer.pending_id for transfer in transfers],
            [transfer.expires_at for transfer in transfers],
            [json.dumps(dict(transfer.user_data), separators=(",", ":")) for transfer in transfers],
            [transfer.created_at for transfer in transfers],
        )
        # A hold with a deadline joins the expiry queue, unless the same batch already resolved it.
        deadlines = [
            transfer
            for transfer in transfers
            if transfer.kind is TransferKind.PENDING and transfer.expires_at is not None and transfer.resolution is None
        ]
        if deadlines:
            await session.execute(
                self._insert_expiries,
                [transfer.id for transfer in deadlines],
                [transfer.expires_at for transfer in deadlines],
            )

    async def _store_resolutions(self, session: asyncpg.Connection, resolutions: Sequence[PendingResolution]) -> None:
        if not resolutions:
            return
        pending_ids = [resolution.pending_id for resolution in resolutions]
        await session.execute(
            self._insert_resolutions,
            pending_ids,
            [resolution.kind.value for resolution in resolutions],
            [resolution.resolving_transfer_id for resolution in resolutions],
            [resolution.resolved_at for resolution in resolutions],
        )
        await session.execute(self._delete_expiries, pending_ids)

    async def _store_balances(self, session: asyncpg.Connection, accounts: Iterable[Account]) -> None:
        changed = list(accounts)
        if not changed:
            return
        status = await session.execute(
            self._update_accounts,
            [account.id for account in changed],
            [account.debits_posted_micros for account in changed],
            [account.credits_posted_micros for account in changed],
            [account.debits_pending_micros for account in changed],
            [account.credits_pending_micros for account in changed],
        )
        if status != f"UPDATE {len(changed)}":
            raise RuntimeError(f"ledger: expected to update {len(changed)} accounts, the database said {status!r}")


def _require_transaction(session: asyncpg.Connection) -> None:
    # Outside a transaction the row locks would be released after each statement, and two
    # writers could overwrite each other's totals: refuse loudly instead.
    if not session.is_in_transaction():
        raise RuntimeError("the ledger runs inside the caller's database transaction (a unit of work)")


def _account_from_row(row: asyncpg.Record) -> Account:
    return Account(
        id=row["id"],
        currency=row["currency"],
        code=row["code"],
        owner_id=row["owner_id"],
        debits_must_not_exceed_credits=row["debits_must_not_exceed_credits"],
        credits_must_not_exceed_debits=row["credits_must_not_exceed_debits"],
        debits_posted_micros=row["debits_posted_micros"],
        credits_posted_micros=row["credits_posted_micros"],
        debits_pending_micros=row["debits_pending_micros"],
        credits_pending_micros=row["credits_pending_micros"],
    )


def _transfer_from_row(row: asyncpg.Record) -> Transfer:
    user_data: Any = json.loads(row["user_data"])
    transfer = Transfer(
        id=row["id"],
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount_micros=row["amount_micros"],
        currency=row["currency"],
        code=row["code"],
        kind=TransferKind(row["kind"]),
        pending_id=row["pending_id"],
        expires_at=row["expires_at"],
        user_data=user_data,
        created_at=row["created_at"],
    )
    if row["resolution_kind"] is None:
        return transfer
    return replace(
        transfer,
        resolution=PendingResolution(
            pending_id=transfer.id,
            kind=ResolutionKind(row["resolution_kind"]),
            resolving_transfer_id=row["resolving_transfer_id"],
            resolved_at=row["resolved_at"],
        ),
    )
