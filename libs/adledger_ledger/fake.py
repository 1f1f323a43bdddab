"""An in-memory ledger for the services' unit tests.

It stores what the pure domain functions return and nothing else, so its behaviour is the
real ledger's by construction: there is no second copy of the rules to drift. It has no
transactions: a change is kept as soon as the call returns, whatever the caller does next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from .domain import (
    Account,
    OwnerIdTakenError,
    PendingResolution,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferResult,
    apply_transfers,
    expire_pending,
    open_accounts,
)


class InMemoryLedger:
    """Implements `ports.Ledger` for any session (the session is ignored)."""

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}
        self._transfers: dict[str, Transfer] = {}
        self._owners: dict[str, str] = {}
        self._versions: dict[str, int] = {}

    async def register_owner(self, session: object, owner_id: str, kind: str) -> None:
        taken = self._owners.setdefault(owner_id, kind)
        if taken != kind:
            raise OwnerIdTakenError(owner_id, kind, taken)

    async def create_accounts(self, session: object, accounts: Sequence[Account]) -> list[Account]:
        opening = open_accounts(self._accounts, accounts)
        for account in opening.new_accounts:
            self._accounts[account.id] = account
        return [self._accounts[account.id] for account in opening.accounts]

    async def create_transfers(
        self, session: object, requests: Sequence[TransferRequest], now: datetime
    ) -> list[TransferResult]:
        outcome = apply_transfers(self._accounts, self._transfers, requests, now)
        for account in outcome.changed_accounts:
            self._accounts[account.id] = account
        for transfer in outcome.new_transfers:
            self._transfers[transfer.id] = transfer
        self._store_resolutions(outcome.new_resolutions)
        return list(outcome.results)

    async def expire_pending(self, session: object, now: datetime) -> list[Transfer]:
        open_holds = [
            transfer
            for transfer in self._transfers.values()
            if transfer.kind is TransferKind.PENDING and transfer.resolution is None and transfer.expires_at is not None
        ]
        outcome = expire_pending(self._accounts, open_holds, now)
        for account in outcome.changed_accounts:
            self._accounts[account.id] = account
        self._store_resolutions(outcome.new_resolutions)
        return list(outcome.expired)

    async def bump_balance_versions(self, session: object, owners: Sequence[tuple[str, str]], now: datetime) -> dict[str, int]:
        for _, owner_id in owners:
            self._versions[owner_id] = self._versions.get(owner_id, 0) + 1
        return {owner_id: self._versions[owner_id] for _, owner_id in owners}

    async def balance_version(self, session: object, owner_id: str) -> int | None:
        return self._versions.get(owner_id)

    async def balances_as_of(self, session: object, account_ids: Sequence[str], instant: datetime) -> dict[str, tuple[int, int]]:
        figures: dict[str, tuple[int, int]] = {}
        for account_id in account_ids:
            posted = held = 0
            for transfer in self._transfers.values():
                if transfer.created_at >= instant:
                    continue
                if transfer.kind in (TransferKind.SINGLE, TransferKind.POST_PENDING):
                    posted += transfer.amount_micros * ((transfer.credit_account_id == account_id) - (transfer.debit_account_id == account_id))
                elif transfer.kind is TransferKind.PENDING and transfer.debit_account_id == account_id:
                    resolution = transfer.resolution
                    if resolution is None or resolution.resolved_at >= instant:
                        held += transfer.amount_micros
            figures[account_id] = (posted, held)
        return figures

    async def balances(self, session: object, account_ids: Sequence[str]) -> dict[str, Account]:
        return {account_id: self._accounts[account_id] for account_id in account_ids if account_id in self._accounts}

    async def lookup_transfers(self, session: object, transfer_ids: Sequence[str]) -> dict[str, Transfer]:
        return {
            transfer_id: self._transfers[transfer_id] for transfer_id in transfer_ids if transfer_id in self._transfers
        }

    def _store_resolutions(self, resolutions: Sequence[PendingResolution]) -> None:
        for resolution in resolutions:
            pending = self._transfers[resolution.pending_id]
            self._transfers[pending.id] = replace(pending, resolution=resolution)
