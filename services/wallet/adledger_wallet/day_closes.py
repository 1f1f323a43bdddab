"""W13 day-close snapshots (and T1): real and virtual balances of every owner at each UTC day close.

`DayCloses.run_due_closes()` takes every close that is due by the injectable clock's `now`,
oldest first, one database transaction per day: the snapshots of every Business Center and ad
account, then the `day_closes` row. The runtime's periodic job calls it every
`day_close_poll_interval_ms`; tests move a ManualClock and call it directly, never sleeping.

Figures are computed from the ledger's immutable transfers timestamped before the close
instant, never from the running totals, so a late run (after downtime) writes exactly what
the balances were at the close:

- real = Σ posted credits − Σ posted debits of the owner's `cash` and `overspend` accounts,
  over transfers of kind `single` and `post_pending` with `created_at < close` (a posted hold
  counts at the moment it was posted, for the amount posted);
- virtual = real − the holds open at the close on the owner's `cash` account: `pending`
  transfers debiting it with `created_at < close` whose resolution (post, void or expiry) was
  not recorded before the close (`resolved_at >= close` or none yet). This is the same figure
  the live balance (`OwnerBalance`) showed at that instant.

Concurrency: each day's transaction takes an advisory lock per schema and re-checks
`day_closes`, and every insert is `on conflict do nothing`, so a rerun or two instances racing
write each day once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg

from adledger_ledger.owners import OwnerKind, owner_account_id
from adledger_libs.clock import Clock
from adledger_libs.logs import get_logger
from adledger_libs.outbox import unit_of_work
from adledger_wallet.domain.balances import day_close_at, day_closes_due
from adledger_libs.clock import utc_day_of

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    owner_id: str
    owner_kind: str
    day: date
    currency: str
    real_micros: int
    virtual_micros: int
    taken_at: datetime


class DayCloses:
    def __init__(self, pool: Callable[[], asyncpg.Pool], ledger_schema: str, clock: Clock) -> None:
        self._pool = pool
        self._ledger = ledger_schema
        self._clock = clock

    async def run_due_closes(self) -> list[date]:
        """Snapshot every day whose close is due by now, oldest first; returns the days this call closed."""
        closed: list[date] = []
        now = self._clock.now()
        for day in await self._due(now):
            if await self._close(day, now):
                closed.append(day)
        return closed

    async def _due(self, now: datetime) -> list[date]:
        async with self._pool().acquire() as conn:
            last = await conn.fetchval("select max(day) from day_closes")
            if last is None:
                # First run: start with the day the earliest Business Center was opened, so the
                # history covers every owner's whole life; with none yet there is nothing to close.
                first_opened = await conn.fetchval("select min(created_at) from business_centers")
                if first_opened is None:
                    return []
                last = utc_day_of(first_opened) - timedelta(days=1)
        return day_closes_due(last, now)

    async def _close(self, day: date, now: datetime) -> bool:
        close = day_close_at(day)
        async with unit_of_work(self._pool()) as uow:
            conn = uow.conn
            await conn.execute("select pg_advisory_xact_lock(hashtext('wallet-day-close:' || current_schema()))")
            if await conn.fetchval("select exists(select 1 from day_closes where day = $1)", day):
                return False
            owners = await conn.fetch(
                "select id, 'business_center' as kind, currency from business_centers where created_at < $1"
                " union all select id, 'ad_account' as kind, currency from ad_accounts where created_at < $1"
                " order by id",
                close,
            )
            figures = await self._figures_at(conn, [(row["kind"], row["id"]) for row in owners], close)
            await conn.executemany(
                "insert into balance_snapshots (owner_id, owner_kind, day, currency, real_micros, virtual_micros, taken_at)"
                " values ($1, $2, $3, $4, $5, $6, $7) on conflict (owner_id, day) do nothing",
                [
                    (row["id"], row["kind"], day, row["currency"], *figures[row["id"]], now)
                    for row in owners
                ],
            )
            await conn.execute("insert into day_closes (day, closed_at) values ($1, $2) on conflict do nothing", day, now)
        log.info("day_closed", day=day.isoformat(), owners=len(owners))
        return True

    async def _figures_at(self, conn: asyncpg.Connection, owners: list[tuple[OwnerKind, str]], close: datetime) -> dict[str, tuple[int, int]]:
        """(real, virtual) per owner as of `close`, from the transfers created before it."""
        real_accounts = {owner_account_id(kind, owner, bucket): owner for kind, owner in owners for bucket in ("cash", "overspend")}
        if not real_accounts:
            return {}
        ledger = self._ledger
        rows = await conn.fetch(
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
                       and t.debit_account_id like '%/cash' and (r.pending_id is null or r.resolved_at >= $2)
                )
                select account_id, sum(posted)::bigint as posted, sum(held)::bigint as held from moves group by account_id""",
            list(real_accounts),
            close,
        )
        real = {owner: 0 for _, owner in owners}
        held = {owner: 0 for _, owner in owners}
        for row in rows:
            owner = real_accounts[row["account_id"]]
            real[owner] += row["posted"]
            held[owner] += row["held"]
        return {owner: (real[owner], real[owner] - held[owner]) for owner in real}


async def history(conn: asyncpg.Connection, owner_id: str, from_day: date | None, to_day: date | None) -> list[Snapshot]:
    """One owner's day-close snapshots, oldest first, between `from_day` and `to_day` inclusive."""
    rows = await conn.fetch(
        "select owner_id, owner_kind, day, currency, real_micros, virtual_micros, taken_at from balance_snapshots"
        " where owner_id = $1 and ($2::date is null or day >= $2) and ($3::date is null or day <= $3) order by day",
        owner_id,
        from_day,
        to_day,
    )
    return [Snapshot(**dict(row)) for row in rows]
