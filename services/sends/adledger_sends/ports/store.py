"""The sends core's one port: a transaction's view (store, the ledger's session, publish)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from adledger_libs.events import Message
from adledger_libs.refusals import Refusal


class UnknownError(Refusal, LookupError):
    """A funding source, team, user balance, campaign or send that does not exist (or is not the caller's)."""


class SendsWork(Protocol):
    @property
    def store(self) -> Any:
        """`adapters.postgres.PostgresSendsStore`'s methods (one transaction's view)."""
        ...

    @property
    def ledger_session(self) -> Any: ...

    def publish(self, message: Message, *, topic: str, key: str | None) -> object: ...


Transactions = Callable[[], AbstractAsyncContextManager[SendsWork]]
