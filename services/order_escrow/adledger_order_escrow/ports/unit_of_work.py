"""One unit of work: one database transaction over the repositories, and the messages it
publishes, which leave only if it commits (the outbox: no dual write)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from adledger_libs.events import Message

from adledger_order_escrow.ports.channels import ChannelRepository
from adledger_order_escrow.ports.deadlines import DeadlineRepository
from adledger_order_escrow.ports.orders import OrderRepository
from adledger_order_escrow.ports.owners import OwnerRepository, People


class UnitOfWork(Protocol):
    @property
    def orders(self) -> OrderRepository: ...

    @property
    def channels(self) -> ChannelRepository: ...

    @property
    def owners(self) -> OwnerRepository: ...

    @property
    def people(self) -> People: ...

    @property
    def deadlines(self) -> DeadlineRepository: ...

    def publish(self, message: Message, *, topic: str, key: str | None) -> None:
        """Publish `message` on `topic` once this unit of work commits; never if it rolls back."""
        ...


#: Opens a unit of work: it commits when the block ends without error, and rolls back otherwise.
UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]
