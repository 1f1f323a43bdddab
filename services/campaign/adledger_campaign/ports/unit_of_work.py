"""The unit of work the core runs each use case in: one database transaction with its store, and
the messages the change publishes (written to the outbox in that same transaction, so a campaign
change and its wallet, invoicing and snapshot messages are kept together or not at all)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from adledger_libs.events import Message

from adledger_campaign.ports.store import CampaignStore


class CampaignUnitOfWork(Protocol):
    @property
    def store(self) -> CampaignStore: ...

    def publish(self, message: Message, *, topic: str, key: str) -> None:
        """Send `message` on `topic` with `key` once, and only if the transaction commits."""
        ...


#: Opens a new unit of work that commits when its block ends without an error (the deadline job's
#: one transaction per deadline).
Transactions = Callable[[], AbstractAsyncContextManager[CampaignUnitOfWork]]
