"""The orders, as the core sees them: a repository of `Order`s and their wallet settlement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from adledger_libs.refusals import Refusal

from adledger_order_escrow.domain.orders import Order
from adledger_order_escrow.domain.parties import unknown_order_reason


class UnknownOrderError(Refusal, LookupError):
    """No order has this id (a caller who may not see an order gets the same answer)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(unknown_order_reason(order_id))
        self.order_id = order_id


@dataclass(frozen=True)
class Settlement:
    """The wallet's answer to the resolution (post or void) of an order's hold, once it came."""

    settled_at: datetime | None
    posted_micros: int | None
    #: The wallet's refusal of a resolution, kept for an operator.
    hold_error: str | None


class OrderRepository(Protocol):
    async def next_number(self) -> int:
        """A new order number for people, never given out twice."""
        ...

    async def add(self, order: Order) -> None: ...

    async def find(self, order_id: str, *, for_update: bool = False) -> Order | None:
        """The order, locked for this unit of work with `for_update`; None when there is none."""
        ...

    async def get(self, order_id: str, *, for_update: bool = False) -> Order:
        """Like `find`.

        Raises:
            UnknownOrderError: there is no such order.
        """
        ...

    async def save(self, order: Order, now: datetime) -> None: ...

    async def settlement(self, order_id: str) -> Settlement:
        """Raises:
        UnknownOrderError: there is no such order.
        """
        ...

    async def record_settlement(self, order_id: str, posted_micros: int, now: datetime) -> None:
        """The wallet posted `posted_micros` of the hold (0: voided); only the first answer counts."""
        ...

    async def record_hold_error(self, order_id: str, error: str, now: datetime) -> None:
        """The wallet refused a resolution; kept only while the hold is unsettled."""
        ...
