"""One transaction of the invoicing service, as the core sees it: its store, the ledger's session
(money moves in the same transaction), and the events it publishes (written to the outbox with
the transaction, so never a dual write)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from adledger_libs.events import Message

from adledger_invoicing.ports.store import InvoicingStore


class InvoicingWork(Protocol):
    @property
    def store(self) -> InvoicingStore: ...

    @property
    def ledger_session(self) -> Any:
        """What the ledger port's methods take to act in this transaction."""
        ...

    def publish(self, message: Message, *, topic: str, key: str | None) -> object:
        """Publish `message` when (and only if) this transaction commits."""
        ...


class Transactions(Protocol):
    """Where the clock-driven jobs open their own transactions."""

    def begin(self) -> AbstractAsyncContextManager[InvoicingWork]:
        """A transaction that commits when the block ends without error, else rolls back."""
        ...
