"""The ledger's books checked, set-based, in one consistent snapshot (the operator's `adledger ledger audit`).

What is checked, and what a break means:
- `currency_sums`: per currency, the stored posted totals (credits minus debits) sum to zero, and so
  do the pending ones (rule M3). A break is money that appeared or vanished.
- `transfer_currencies`: every transfer moves money between two accounts of its own currency
  (rule M2). A transfer across currencies leaves both currencies unbalanced.
- `account_totals`: each account's four stored totals equal the sum of its transfers, with the
  domain's semantics (`domain.py`): posted = `single` and `post_pending` transfers (a post carries
  the amount posted, which may be part of the hold); pending = `pending` transfers that have no
  row in `pending_resolutions` (a post, a void and an expiry each remove the whole held amount);
  `void_pending` moves nothing posted. A break is a total changed behind the ledger's back, or a
  transfer stored without its totals.
- `expired_holds`: no `pending` transfer is still unresolved past its `expires_at` (plus a grace
  for the sweep, which runs every second in the wallet): money held for ever.
- `hold_resolutions`: a hold is resolved by at most one transfer, and a resolved hold is no longer
  in the expiry queue.
- The owners' figures (`owner_balances`) for the comparison with `balances.v1`, read in the same
  snapshot with the same code that publishes them (`publishing.read_owner_balances`,
  `publishing.balance_event`), so the audit can never disagree with the publisher by re-deriving.

Everything runs in one REPEATABLE READ, read-only transaction, so totals and transfers are read
at the same instant while the services keep writing. Each check is one statement over the
tables, never one per row; the heaviest (totals against transfers) reads `transfers` once and
aggregates by account and currency. This module is the only place with the audit's SQL: the
ledger's tables are read only by `adledger_ledger`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from adledger_contracts.external import BalanceChanged
from adledger_libs.db import checked_schema
from adledger_libs.outbox import UnitOfWork

from .owners import OwnerKind, owner_account_id, owner_buckets
from .postgres import PostgresLedger
from .publishing import balance_event, read_owner_balances

#: The sweep releases due holds every second; a hold a little past its deadline is on its way.
DEFAULT_EXPIRY_GRACE = timedelta(seconds=60)
#: How many examples of each kind of break are kept (the count is always complete).
DEFAULT_EXAMPLES = 20

CHECK_CURRENCY_SUMS = "currency_sums"
CHECK_TRANSFER_CURRENCIES = "transfer_currencies"
CHECK_ACCOUNT_TOTALS = "account_totals"
CHECK_EXPIRED_HOLDS = "expired_holds"
CHECK_HOLD_RESOLUTIONS = "hold_resolutions"
CHECK_OWNER_ACCOUNTS = "owner_accounts"
LEDGER_CHECKS = (
    CHECK_CURRENCY_SUMS,
    CHECK_TRANSFER_CURRENCIES,
    CHECK_ACCOUNT_TOTALS,
    CHECK_EXPIRED_HOLDS,
    CHECK_HOLD_RESOLUTIONS,
    CHECK_OWNER_ACCOUNTS,
)


@dataclass(frozen=True)
class Finding:
    """One break of the books: which check, what it concerns, and what is wrong, in words."""

    check: str
    subject: str
    detail: str


@dataclass(frozen=True)
class CurrencySum:
    currency: str
    accounts: int
    posted_micros: int
    pending_micros: int


@dataclass(frozen=True)
class Totals:
    debits_posted_micros: int
    credits_posted_micros: int
    debits_pending_micros: int
    credits_pending_micros: int

    def differences(self, other: Totals) -> list[str]:
        """The names of the totals that differ, with both figures."""
        return [
            f"{name.removesuffix('_micros')} stored {getattr(self, name)}, from transfers {getattr(other, name)}"
            for name in (
                "debits_posted_micros",
                "credits_posted_micros",
                "debits_pending_micros",
                "credits_pending_micros",
            )
            if getattr(self, name) != getattr(other, name)
        ]


@dataclass(frozen=True)
class TotalsMismatch:
    account_id: str
    currency: str
    stored: Totals
    from_transfers: Totals


@dataclass(frozen=True)
class ForeignCurrencyTransfer:
    transfer_id: str
    currency: str
    account_id: str
    account_currency: str


@dataclass(frozen=True)
class ExpiredHold:
    transfer_id: str
    debit_account_id: str
    credit_account_id: str
    amount_micros: int
    currency: str
    expires_at: datetime


@dataclass(frozen=True)
class OwnerFigures:
    """An owner's balance as `balances.v1` must show it at the audited snapshot."""

    owner_id: str
    owner_kind: OwnerKind
    version: int
    expected: BalanceChanged


@dataclass(frozen=True)
class LedgerAudit:
    schema: str
    audited_at: datetime
    transfers: int
    accounts: int
    currency_sums: tuple[CurrencySum, ...]
    totals_mismatch_count: int
    totals_mismatches: tuple[TotalsMismatch, ...]
    #: Accounts moved by a transfer in another currency than their own (complete count).
    foreign_currency_count: int
    foreign_currency_transfers: tuple[ForeignCurrencyTransfer, ...]
    expired_hold_count: int
    expired_holds: tuple[ExpiredHold, ...]
    holds_resolved_twice: tuple[str, ...]
    resolved_holds_in_expiry_queue: tuple[str, ...]
    owners_without_accounts: tuple[str, ...]
    owner_figures: tuple[OwnerFigures, ...] = field(default=())
    examples_kept: int = DEFAULT_EXAMPLES

    def findings(self) -> list[Finding]:
        """Every break found, as words an operator can act on (examples bounded, counts complete)."""
        found: list[Finding] = []
        for item in self.currency_sums:
            if item.posted_micros != 0 or item.pending_micros != 0:
                found.append(
                    Finding(
                        CHECK_CURRENCY_SUMS,
                        item.currency,
                        f"{item.currency} does not sum to zero: posted {item.posted_micros} micros, "
                        f"pending {item.pending_micros} micros over {item.accounts} accounts",
                    )
                )
        for transfer in self.foreign_currency_transfers:
            found.append(
                Finding(
                    CHECK_TRANSFER_CURRENCIES,
                    transfer.transfer_id,
                    f"transfer {transfer.transfer_id} in {transfer.currency} moves account {transfer.account_id} "
                    f"held in {transfer.account_currency}",
                )
            )
        if self.foreign_currency_count > self.examples_kept:
            found.append(
                Finding(
                    CHECK_TRANSFER_CURRENCIES,
                    "(more)",
                    f"{self.foreign_currency_count} accounts in all are moved in another currency than their own",
                )
            )
        for mismatch in self.totals_mismatches:
            found.append(
                Finding(
                    CHECK_ACCOUNT_TOTALS,
                    mismatch.account_id,
                    f"account {mismatch.account_id} totals differ from its transfers: "
                    + "; ".join(mismatch.stored.differences(mismatch.from_transfers)),
                )
            )
        found += _more(CHECK_ACCOUNT_TOTALS, self.totals_mismatch_count, len(self.totals_mismatches))
        for hold in self.expired_holds:
            found.append(
                Finding(
                    CHECK_EXPIRED_HOLDS,
                    hold.transfer_id,
                    f"hold {hold.transfer_id} of {hold.amount_micros} {hold.currency} micros on "
                    f"{hold.debit_account_id} expired at {hold.expires_at.isoformat()} and is still unresolved",
                )
            )
        found += _more(CHECK_EXPIRED_HOLDS, self.expired_hold_count, len(self.expired_holds))
        for pending_id in self.holds_resolved_twice:
            found.append(
                Finding(CHECK_HOLD_RESOLUTIONS, pending_id, f"hold {pending_id} is resolved by more than one transfer")
            )
        for pending_id in self.resolved_holds_in_expiry_queue:
            found.append(
                Finding(
                    CHECK_HOLD_RESOLUTIONS, pending_id, f"hold {pending_id} is resolved but still in the expiry queue"
                )
            )
        for owner_id in self.owners_without_accounts:
            found.append(
                Finding(
                    CHECK_OWNER_ACCOUNTS, owner_id, f"owner {owner_id} has a balance version but not all its accounts"
                )
            )
        return found


def _more(check: str, count: int, shown: int) -> list[Finding]:
    if count <= shown:
        return []
    return [Finding(check, "(more)", f"{count - shown} more not shown ({count} in all)")]


def _int(value: Decimal | int | None) -> int:
    """A sum from PostgreSQL (numeric, so it cannot overflow) as an exact int; never a float (M1)."""
    if value is None:
        return 0
    return int(value)


async def has_ledger(conn: asyncpg.Connection, schema: str) -> bool:
    """Whether `schema` holds the ledger's tables (so an operator's typo is told, not audited)."""
    return await conn.fetchval("select to_regclass($1)", f"{checked_schema(schema)}.transfers") is not None


async def audit_ledger(
    conn: asyncpg.Connection,
    schema: str,
    *,
    now: datetime,
    expiry_grace: timedelta = DEFAULT_EXPIRY_GRACE,
    examples: int = DEFAULT_EXAMPLES,
) -> LedgerAudit:
    """Check the ledger in `schema` at one snapshot; `now` is the clock's time for the expiry check.

    Runs its own read-only REPEATABLE READ transaction on `conn` (which must not be in one)."""
    schema = checked_schema(schema)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"set local work_mem = '{AUDIT_WORK_MEM}'")
        counts = await conn.fetchrow(
            f"select (select count(*) from {schema}.transfers) as transfers,"
            f" (select count(*) from {schema}.accounts) as accounts"
        )
        assert counts is not None
        currency_sums = await _currency_sums(conn, schema)
        mismatch_count, mismatches, (foreign_count, foreign_accounts) = await _account_totals(conn, schema, examples)
        foreign = await _foreign_currency_transfers(conn, schema, foreign_accounts, examples)
        expired_count, expired = await _expired_holds(conn, schema, now - expiry_grace, examples)
        resolved_twice = await conn.fetch(
            f"""select pending_id from {schema}.transfers where pending_id is not null
                group by pending_id having count(*) > 1 order by pending_id limit $1""",
            examples,
        )
        stale_queue = await conn.fetch(
            f"""select e.pending_id from {schema}.pending_expiries e
                join {schema}.pending_resolutions r on r.pending_id = e.pending_id order by e.pending_id limit $1""",
            examples,
        )
        owners_without_accounts, figures = await owner_figures(conn, schema, now)
    return LedgerAudit(
        schema=schema,
        audited_at=now,
        transfers=int(counts["transfers"]),
        accounts=int(counts["accounts"]),
        currency_sums=currency_sums,
        totals_mismatch_count=mismatch_count,
        totals_mismatches=mismatches,
        foreign_currency_count=foreign_count,
        foreign_currency_transfers=foreign,
        expired_hold_count=expired_count,
        expired_holds=expired,
        holds_resolved_twice=tuple(row["pending_id"] for row in resolved_twice),
        resolved_holds_in_expiry_queue=tuple(row["pending_id"] for row in stale_queue),
        owners_without_accounts=owners_without_accounts,
        owner_figures=figures,
        examples_kept=examples,
    )


async def _currency_sums(conn: asyncpg.Connection, schema: str) -> tuple[CurrencySum, ...]:
    rows = await conn.fetch(
        f"""select currency, count(*) as accounts,
                   sum(credits_posted_micros - debits_posted_micros) as posted,
                   sum(credits_pending_micros - debits_pending_micros) as pending
            from {schema}.accounts group by currency order by currency"""
    )
    return tuple(
        CurrencySum(row["currency"], int(row["accounts"]), _int(row["posted"]), _int(row["pending"])) for row in rows
    )


def movements_sql(schema: str) -> str:
    """A query of what the transfers say each account's totals are, by account and by the
    transfers' currency: columns account_id, currency, debits_posted, credits_posted,
    debits_pending, credits_pending. The domain's semantics (module docstring): posted from
    `single` and `post_pending` transfers, pending from the holds that have no resolution.

    It reads `transfers` once, aggregating by (debit account, credit account, currency), a few
    rows per account, and splits those into both sides afterwards; the open holds are found with
    an anti-join on `pending_resolutions`. The synthetic ledger sets its totals with it too.
    """
    schema = checked_schema(schema)
    return f"""
        with pairs as materialized (
            select debit_account_id, credit_account_id, currency,
                   coalesce(sum(amount_micros) filter (where kind in ('single', 'post_pending')), 0) as posted,
                   0::numeric as held
            from {schema}.transfers group by debit_account_id, credit_account_id, currency
            union all
            select t.debit_account_id, t.credit_account_id, t.currency, 0, sum(t.amount_micros)
            from {schema}.transfers t
            where t.kind = 'pending'
              and not exists (select 1 from {schema}.pending_resolutions r where r.pending_id = t.id)
            group by t.debit_account_id, t.credit_account_id, t.currency)
        select account_id, currency, sum(debits_posted) as debits_posted, sum(credits_posted) as credits_posted,
               sum(debits_pending) as debits_pending, sum(credits_pending) as credits_pending
        from (
            select debit_account_id as account_id, currency, posted as debits_posted, 0 as credits_posted,
                   held as debits_pending, 0 as credits_pending from pairs
            union all
            select credit_account_id, currency, 0, posted, 0, held from pairs
        ) sides
        group by account_id, currency"""


#: The aggregation by account pair keeps a few rows per account in memory; with PostgreSQL's
#: default 4 MB it sorts instead of hashing, three times slower on a million transfers.
AUDIT_WORK_MEM = "64MB"


async def _account_totals(
    conn: asyncpg.Connection, schema: str, examples: int
) -> tuple[int, tuple[TotalsMismatch, ...], tuple[int, list[str]]]:
    """Accounts whose stored totals differ from their transfers, and accounts moved in a foreign
    currency (how many, and the first of them), from one read of `transfers` (`movements_sql`)."""
    rows = await conn.fetch(
        f"""with movements as ({movements_sql(schema)}),
            per_account as (
                select account_id, bool_or(m.currency <> a.currency) as foreign_currency,
                       sum(debits_posted) as debits_posted, sum(credits_posted) as credits_posted,
                       sum(debits_pending) as debits_pending, sum(credits_pending) as credits_pending
                from movements m join {schema}.accounts a on a.id = m.account_id
                group by account_id),
            compared as (
                select a.id, a.currency, coalesce(p.foreign_currency, false) as foreign_currency,
                       a.debits_posted_micros, a.credits_posted_micros,
                       a.debits_pending_micros, a.credits_pending_micros,
                       coalesce(p.debits_posted, 0) as debits_posted, coalesce(p.credits_posted, 0) as credits_posted,
                       coalesce(p.debits_pending, 0) as debits_pending,
                       coalesce(p.credits_pending, 0) as credits_pending
                from {schema}.accounts a left join per_account p on p.account_id = a.id),
            broken as (
                select *, (debits_posted_micros, credits_posted_micros, debits_pending_micros, credits_pending_micros)
                          is distinct from (debits_posted, credits_posted, debits_pending, credits_pending) as mismatch
                from compared),
            ranked as (
                select *, count(*) filter (where mismatch) over () as mismatch_count,
                       count(*) filter (where foreign_currency) over () as foreign_count,
                       row_number() over (partition by mismatch order by id) as mismatch_rank,
                       row_number() over (partition by foreign_currency order by id) as foreign_rank
                from broken where mismatch or foreign_currency)
            select * from ranked
            where (mismatch and mismatch_rank <= $1) or (foreign_currency and foreign_rank <= $1)
            order by id""",
        examples,
    )
    mismatch_rows = [row for row in rows if row["mismatch"]]
    mismatch_count = int(rows[0]["mismatch_count"]) if rows else 0
    foreign_count = int(rows[0]["foreign_count"]) if rows else 0
    mismatches = tuple(
        TotalsMismatch(
            account_id=row["id"],
            currency=row["currency"],
            stored=Totals(
                int(row["debits_posted_micros"]),
                int(row["credits_posted_micros"]),
                int(row["debits_pending_micros"]),
                int(row["credits_pending_micros"]),
            ),
            from_transfers=Totals(
                _int(row["debits_posted"]),
                _int(row["credits_posted"]),
                _int(row["debits_pending"]),
                _int(row["credits_pending"]),
            ),
        )
        for row in mismatch_rows
    )
    foreign_accounts = [row["id"] for row in rows if row["foreign_currency"]]
    return mismatch_count, mismatches, (foreign_count, foreign_accounts)


async def _foreign_currency_transfers(
    conn: asyncpg.Connection, schema: str, account_ids: Sequence[str], examples: int
) -> tuple[ForeignCurrencyTransfer, ...]:
    """Examples of transfers of the accounts moved in another currency than their own (found by
    the totals' scan), read through the accounts' indexes: nothing to do on a healthy ledger."""
    if not account_ids:
        return ()
    rows = await conn.fetch(
        f"""with sides as (
                select t.id, t.currency, t.debit_account_id as account_id from {schema}.transfers t
                where t.debit_account_id = any($1::text[])
                union all
                select t.id, t.currency, t.credit_account_id from {schema}.transfers t
                where t.credit_account_id = any($1::text[]))
            select s.id, s.currency, s.account_id, a.currency as account_currency
            from sides s join {schema}.accounts a on a.id = s.account_id
            where s.currency <> a.currency
            order by s.id, s.account_id limit $2""",
        list(account_ids),
        examples,
    )
    return tuple(
        ForeignCurrencyTransfer(row["id"], row["currency"], row["account_id"], row["account_currency"]) for row in rows
    )


async def _expired_holds(
    conn: asyncpg.Connection, schema: str, due_before: datetime, examples: int
) -> tuple[int, tuple[ExpiredHold, ...]]:
    """Holds past their deadline with no resolution. Read from `transfers`, not from the sweep's
    own queue (`pending_expiries`), so a hold missing from the queue is found too."""
    rows = await conn.fetch(
        f"""select t.id, t.debit_account_id, t.credit_account_id, t.amount_micros, t.currency, t.expires_at,
                   count(*) over () as total
            from {schema}.transfers t
            where t.kind = 'pending' and t.expires_at < $1
              and not exists (select 1 from {schema}.pending_resolutions r where r.pending_id = t.id)
            order by t.expires_at, t.id limit $2""",
        due_before,
        examples,
    )
    total = int(rows[0]["total"]) if rows else 0
    return total, tuple(
        ExpiredHold(
            row["id"],
            row["debit_account_id"],
            row["credit_account_id"],
            int(row["amount_micros"]),
            row["currency"],
            row["expires_at"],
        )
        for row in rows
    )


async def owner_figures(
    conn: asyncpg.Connection, schema: str, now: datetime, owner_ids: Sequence[str] | None = None
) -> tuple[tuple[str, ...], tuple[OwnerFigures, ...]]:
    """Every owner with a published version (or only `owner_ids`), and the record `balances.v1`
    must hold for it: the owners whose accounts are incomplete, and the others' figures.

    Call it inside a transaction (as `audit_ledger` does, or `recheck_owner_figures`), so the
    versions and the balances are one snapshot."""
    schema = checked_schema(schema)
    if owner_ids is None:
        rows = await conn.fetch(f"select owner_id, owner_kind, version from {schema}.owner_versions order by owner_id")
    else:
        rows = await conn.fetch(
            f"select owner_id, owner_kind, version from {schema}.owner_versions where owner_id = any($1::text[])"
            " order by owner_id",
            list(owner_ids),
        )
    owners: list[tuple[OwnerKind, str]] = [(row["owner_kind"], row["owner_id"]) for row in rows]
    needed = [owner_account_id(kind, owner, bucket) for kind, owner in owners for bucket in owner_buckets(kind)]
    present = set(
        await conn.fetchval(
            f"select coalesce(array_agg(id), '{{}}') from {schema}.accounts where id = any($1::text[])", needed
        )
    )
    complete = [
        (kind, owner)
        for kind, owner in owners
        if all(owner_account_id(kind, owner, bucket) in present for bucket in owner_buckets(kind))
    ]
    complete_owners = set(complete)
    missing = tuple(owner for kind, owner in owners if (kind, owner) not in complete_owners)
    versions = {row["owner_id"]: int(row["version"]) for row in rows}
    balances = await read_owner_balances(UnitOfWork(conn), PostgresLedger(schema), complete)
    figures = tuple(
        OwnerFigures(
            item.owner_id, item.owner_kind, versions[item.owner_id], balance_event(item, versions[item.owner_id], now)
        )
        for item in balances
    )
    return missing, figures


async def recheck_owner_figures(
    conn: asyncpg.Connection, schema: str, now: datetime, owner_ids: Sequence[str]
) -> tuple[OwnerFigures, ...]:
    """The figures of some owners again, at a new snapshot (the audit settles owners whose record
    on `balances.v1` was not yet, or already no longer, at the audited version)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        _, figures = await owner_figures(conn, schema, now, owner_ids)
    return figures
