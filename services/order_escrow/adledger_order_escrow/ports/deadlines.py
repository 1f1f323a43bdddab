"""The deadlines of O2 and O5, kept so that they survive restarts (O6)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from adledger_order_escrow.domain.orders import DeadlineKind


@dataclass(frozen=True)
class DueDeadline:
    order_id: str
    kind: DeadlineKind
    due_at: datetime


class DeadlineRepository(Protocol):
    async def schedule(self, order_id: str, kind: DeadlineKind, due_at: datetime) -> None:
        """Keep a deadline; one per order and kind (a second is ignored)."""
        ...

    async def take_due(self, now: datetime) -> DueDeadline | None:
        """The oldest deadline due at `now` that is not done, held for this unit of work alone:
        another unit of work running at the same time does not get it, and once this one marks
        it done it is done for everyone (O6)."""
        ...

    async def mark_done(self, deadline: DueDeadline, outcome: str, now: datetime) -> None: ...
