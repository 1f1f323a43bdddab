"""The ledger as the services see it, in domain words.

Every method takes the caller's `session`: the handle of the database transaction the ledger's
changes belong to (a `UnitOfWork.conn` for `PostgresLedger`), so money moves in the same
transaction as the service's own effects, its consumer position and its outbox rows. The
in-memory fake ignores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from .domain import Account, Transfer, TransferRequest, TransferResult

Session = TypeVar("Session", contravariant=True)


class Ledger(Protocol[Session]):
    """Accounts and immutable transfers between them, in integer micros (rules M1-M5)."""

    async def create_accounts(self, session: Session, accounts: Sequence[Account]) -> list[Account]:
        """Open accounts, idempotently; answers each with the stored account (and its totals).

        Raises:
            IdempotencyConflictError: an id exists with another currency, code, owner or guard.
            InvalidAccountError: a new account does not start with zero totals.
        """
        ...

    async def create_transfers(
        self, session: Session, requests: Sequence[TransferRequest], now: datetime
    ) -> list[TransferResult]:
        """Apply the requests in order; answers each with its transfer or its typed error.

        A refused request (or linked chain) applies nothing and the others still apply; call
        `TransferResult.unwrap()` to raise the error. A request whose id was applied before
        applies nothing and answers the first result (`replayed=True`, rule M5). The errors a
        result can carry are those of `domain.apply_transfers`: UnknownAccountError,
        CurrencyMismatchError, InsufficientFundsError, IdempotencyConflictError,
        PendingTransferNotFoundError, PendingTransferAlreadyResolvedError,
        PendingTransferExpiredError, AmountExceedsPendingError, PendingTransferMismatchError,
        InvalidTransferError, LinkedTransferFailedError, LinkedChainOpenError.

        Raises:
            ValueError: `now` is not a timezone-aware UTC datetime.
        """
        ...

    async def register_owner(self, session: Session, owner_id: str, kind: str) -> None:
        """Record that `owner_id` names an owner of `kind` (idempotent for the same kind).

        Raises:
            OwnerIdTakenError: the id already names an owner of another kind.
        """
        ...

    async def expire_pending(self, session: Session, now: datetime) -> list[Transfer]:
        """Release the unresolved pending transfers whose `expires_at` is at or before `now`.

        Answers the expired transfers with their resolution; each hold resolves at most once,
        so running it twice or racing a post is harmless.

        Raises:
            ValueError: `now` is not a timezone-aware UTC datetime.
        """
        ...

    async def bump_balance_versions(self, session: Session, owners: Sequence[tuple[str, str]], now: datetime) -> dict[str, int]:
        """Give each (owner kind, owner id) the next version of its published balance (`balances.v1`);
        the versions are locked until the session's transaction ends, so the balance read after it
        is the one that version carries."""
        ...

    async def balance_version(self, session: Session, owner_id: str) -> int | None:
        """The version of the owner's newest published balance, or None before the first."""
        ...

    async def balances_as_of(self, session: Session, account_ids: Sequence[str], instant: datetime) -> dict[str, tuple[int, int]]:
        """(posted balance, debits held) of each account as it stood at `instant` (W13's day closes)."""
        ...

    async def balances(self, session: Session, account_ids: Sequence[str]) -> dict[str, Account]:
        """The accounts with their current totals, by id; unknown ids are absent."""
        ...

    async def lookup_transfers(self, session: Session, transfer_ids: Sequence[str]) -> dict[str, Transfer]:
        """The stored transfers by id, pending ones with their resolution; unknown ids are absent."""
        ...
