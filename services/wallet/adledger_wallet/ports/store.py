"""The wallet's own records (Business Centers, ad accounts, payouts, day closes, threshold states)
as one transaction sees them. The core names no database; `adapters/postgres.py` implements it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from adledger_ledger.owners import OwnerKind
from adledger_libs.refusals import Refusal
from adledger_wallet.domain.model import AdAccount, Budget, BusinessCenter
from adledger_wallet.domain.payouts import Payout


class UnknownBusinessCenterError(Refusal, LookupError):
    def __init__(self, business_center_id: str) -> None:
        super().__init__(f"no Business Center {business_center_id!r}")
        self.business_center_id = business_center_id


class UnknownAdAccountError(Refusal, LookupError):
    def __init__(self, ad_account_id: str) -> None:
        super().__init__(f"no ad account {ad_account_id!r}")
        self.ad_account_id = ad_account_id


class UnknownUserError(Refusal, LookupError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user {user_id!r}")
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An owner's balances at one UTC day close (W13), never rewritten."""

    owner_id: str
    owner_kind: str
    day: date
    currency: str
    real_micros: int
    virtual_micros: int
    taken_at: datetime


@dataclass(frozen=True, slots=True)
class OutstandingPayout:
    id: str
    payee_account_id: str
    amount_micros: int
    currency: str
    code: str


class WalletStore(Protocol):
    # Business Centers and ad accounts --------------------------------------------------------------

    async def load_business_center(self, business_center_id: str, *, for_update: bool = False) -> BusinessCenter:
        """Raises: UnknownBusinessCenterError."""
        ...

    async def business_center_name(self, business_center_id: str) -> str: ...

    async def insert_business_center(self, business_center: BusinessCenter, name: str, now: datetime) -> bool:
        """False when a Business Center with this id exists."""
        ...

    async def mark_aba_enabled(self, business_center_id: str, now: datetime) -> None: ...

    async def set_credit_limit(self, business_center_id: str, credit_limit_micros: int) -> None: ...

    async def record_payment(self, business_center_id: str, amount_micros: int) -> None: ...

    async def load_ad_account(self, ad_account_id: str) -> AdAccount:
        """Raises: UnknownAdAccountError."""
        ...

    async def load_ad_accounts(self, business_center_id: str) -> list[AdAccount]: ...

    async def insert_ad_account(self, ad_account: AdAccount, name: str, now: datetime) -> bool: ...

    async def save_budgets(self, accounts: Sequence[AdAccount]) -> None: ...

    async def copy_budget_cap(self, ad_account_id: str, budget: Budget, version: int) -> bool: ...

    async def owner_kind_of(self, owner_id: str) -> tuple[OwnerKind, str] | None:
        """(kind, its Business Center's id) of an owner of this wallet, or None."""
        ...

    async def user_exists(self, user_id: str) -> bool:
        """Whether the platform's identity knows the user (the wallet's replica of it)."""
        ...

    # Payouts (W14) ----------------------------------------------------------------------------------

    async def insert_payout(self, payout: Payout, now: datetime) -> None: ...

    async def outstanding_payouts(self, payer_id: str) -> list[OutstandingPayout]:
        """Oldest first, locked until the transaction ends."""
        ...

    async def mark_payouts_paid(self, payout_ids: Sequence[str], now: datetime) -> None: ...

    async def payout_paid(self, payout_id: str) -> bool: ...

    # Day closes (W13) ------------------------------------------------------------------------------

    async def last_day_closed(self) -> date | None: ...

    async def first_business_center_opened_at(self) -> datetime | None: ...

    async def lock_day_closes(self) -> None:
        """Serialise day closes of every instance (held until the transaction ends)."""
        ...

    async def day_closed(self, day: date) -> bool: ...

    async def owners_opened_before(self, instant: datetime) -> list[tuple[OwnerKind, str, str]]:
        """(kind, id, currency) of every owner that existed before `instant`, by id."""
        ...

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None: ...

    async def mark_day_closed(self, day: date, now: datetime) -> None: ...

    async def history(self, owner_id: str, from_day: date | None, to_day: date | None) -> list[Snapshot]: ...

    # Prepayment thresholds (W12) ----------------------------------------------------------------------

    async def business_center_exists(self, business_center_id: str) -> bool: ...

    async def threshold_state(self, owner_id: str, now: datetime) -> tuple[bool, int]:
        """(below, version decided from), locked; a new owner starts at (False, 0)."""
        ...

    async def save_threshold_state(self, owner_id: str, below: bool, version: int, now: datetime) -> None: ...
