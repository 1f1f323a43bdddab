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
write each day once. The figures come from the ledger's port (`balances_as_of`): no SQL against
the ledger's tables outside the ledger library.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from adledger_ledger.owners import OwnerKind, owner_account_id
from adledger_ledger.ports import Ledger
from adledger_libs.clock import Clock, utc_day_of
from adledger_libs.logs import get_logger
from adledger_libs.outbox import UnitOfWork, unit_of_work
from adledger_wallet.domain.balances import day_close_at, day_closes_due
from adledger_wallet.ports.store import Snapshot, WalletStore

log = get_logger(__name__)


class DayCloses:
    def __init__(
        self, pool: Callable[[], asyncpg.Pool], ledger: Ledger[Any], store: Callable[[UnitOfWork], WalletStore], clock: Clock
    ) -> None:
        self._pool = pool
        self._ledger = ledger
        self._store = store
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
        async with unit_of_work(self._pool()) as uow:
            store = self._store(uow)
            last = await store.last_day_closed()
            if last is None:
                # First run: start with the day the earliest Business Center was opened, so the
                # history covers every owner's whole life; with none yet there is nothing to close.
                first_opened = await store.first_business_center_opened_at()
                if first_opened is None:
                    return []
                last = utc_day_of(first_opened) - timedelta(days=1)
        return day_closes_due(last, now)

    async def _close(self, day: date, now: datetime) -> bool:
        close = day_close_at(day)
        async with unit_of_work(self._pool()) as uow:
            store = self._store(uow)
            await store.lock_day_closes()
            if await store.day_closed(day):
                return False
            owners = await store.owners_opened_before(close)
            figures = await self._figures_at(uow, [(kind, owner_id) for kind, owner_id, _ in owners], close)
            await store.save_snapshots([
                Snapshot(owner_id, kind, day, currency, *figures[owner_id], now) for kind, owner_id, currency in owners
            ])
            await store.mark_day_closed(day, now)
        log.info("day_closed", day=day.isoformat(), owners=len(owners))
        return True

    async def _figures_at(self, uow: UnitOfWork, owners: list[tuple[OwnerKind, str]], close: datetime) -> dict[str, tuple[int, int]]:
        """(real, virtual) per owner as of `close`: real from the cash and overspend accounts, the
        holds open then on cash taken off for virtual."""
        cash = {owner_account_id(kind, owner, "cash"): owner for kind, owner in owners}
        overspend = {owner_account_id(kind, owner, "overspend"): owner for kind, owner in owners}
        if not cash:
            return {}
        figures = await self._ledger.balances_as_of(uow.conn, [*cash, *overspend], close)
        real = {owner: figures[account][0] for account, owner in cash.items()}
        for account, owner in overspend.items():
            real[owner] += figures[account][0]
        return {owner: (real[owner], real[owner] - figures[account][1]) for account, owner in cash.items()}
