"""The ledger's rules, pure: no I/O and no awaits (rules M1-M5).

The model is TigerBeetle's. An account holds four running totals in integer micros (posted and
pending, debits and credits) and one currency. A transfer debits one account and credits
another by a strictly positive amount; it is never updated or deleted, so a mistake is fixed by
a new transfer. A transfer's id is its idempotency key: the same request twice applies once and
the second answer is the first result.

Two-phase transfers (rule M4): a *pending* transfer moves the amount into the pending totals of
both accounts (a hold). It is resolved exactly once, by a *post_pending* transfer (the whole
amount or part of it, the rest is released), a *void_pending* transfer (all of it is released)
or by expiry once `expires_at` has come. The resolution lives beside the pending transfer (it is
derived from the transfer that resolved it), so the pending record itself never changes.

The functions here take the current state of the accounts and transfers a batch touches and
return the new state; the adapters (`postgres`, `fake`) only load and store it, so these are the
only place where the rules live.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from adledger_libs.money import MAXIMUM_MICROS, CurrencyMismatchError
from adledger_libs.refusals import Refusal

__all__ = [
    "Account",
    "AccountOpening",
    "AmountExceedsPendingError",
    "CurrencyMismatchError",
    "ExpiryOutcome",
    "IdempotencyConflictError",
    "InsufficientFundsError",
    "InvalidAccountError",
    "InvalidTransferError",
    "LedgerError",
    "LinkedChainOpenError",
    "LinkedTransferFailedError",
    "OwnerIdTakenError",
    "PendingResolution",
    "PendingTransferAlreadyResolvedError",
    "PendingTransferExpiredError",
    "PendingTransferMismatchError",
    "PendingTransferNotFoundError",
    "ResolutionKind",
    "SameAccountError",
    "Transfer",
    "TransferBatchOutcome",
    "TransferError",
    "TransferKind",
    "TransferRequest",
    "TransferResult",
    "UnknownAccountError",
    "apply_transfers",
    "available",
    "balance",
    "expire_pending",
    "open_accounts",
    "raise_first_error",
]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TOTAL_NAMES = ("debits_posted_micros", "credits_posted_micros", "debits_pending_micros", "credits_pending_micros")
_DEFINITION_NAMES = (
    "id",
    "currency",
    "code",
    "owner_id",
    "debits_must_not_exceed_credits",
    "credits_must_not_exceed_debits",
)
_MAXIMUM_ID_LENGTH = 256
# PostgreSQL stores the totals as bigint; a total beyond it must fail here, not in the database.
_MAXIMUM_MICROS = MAXIMUM_MICROS


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class LedgerError(Refusal):
    """A request the ledger refused. Nothing of the refused request was applied."""


class InvalidTransferError(LedgerError, ValueError):
    """A transfer request that is malformed whatever the state of the ledger."""


class InvalidAccountError(LedgerError, ValueError):
    """An account definition that is malformed (bad currency, both balance guards, ...)."""


class SameAccountError(InvalidTransferError):
    """A transfer would debit and credit the same account."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"a transfer cannot debit and credit the same account {account_id!r}")
        self.account_id = account_id


class UnknownAccountError(LedgerError):
    """A transfer names an account that does not exist."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"unknown account {account_id!r}")
        self.account_id = account_id


class InsufficientFundsError(LedgerError):
    """A guarded account would go past its limit; pending debits (holds) count as spent.

    `guard` says which flag refused it: for `debits_must_not_exceed_credits` the account is
    the debited one and `available_micros` is credits posted minus debits posted and pending;
    for `credits_must_not_exceed_debits` it is the credited one, mirrored.
    """

    def __init__(self, account_id: str, needed_micros: int, available_micros: int, guard: str) -> None:
        super().__init__(
            f"insufficient funds on account {account_id!r}: needed {needed_micros} micros,"
            f" available {available_micros} micros ({guard})"
        )
        self.account_id = account_id
        self.needed_micros = needed_micros
        self.available_micros = available_micros
        self.guard = guard


class IdempotencyConflictError(LedgerError):
    """An id that was already used, for a request with different fields (rule M5)."""

    def __init__(self, id: str, differing_fields: Sequence[str]) -> None:
        super().__init__(f"id {id!r} was already used with different {', '.join(differing_fields)}")
        self.id = id
        self.differing_fields = tuple(differing_fields)


class PendingTransferNotFoundError(LedgerError):
    """A post or void names a pending transfer that does not exist or is not pending."""

    def __init__(self, pending_id: str, reason: str = "does not exist") -> None:
        super().__init__(f"pending transfer {pending_id!r} {reason}")
        self.pending_id = pending_id


class PendingTransferAlreadyResolvedError(LedgerError):
    """A pending transfer was already posted, voided or expired; it resolves only once (rule M4)."""

    def __init__(self, pending_id: str, resolution: PendingResolution) -> None:
        super().__init__(f"pending transfer {pending_id!r} was already {resolution.kind.value}")
        self.pending_id = pending_id
        self.resolution = resolution


class PendingTransferExpiredError(LedgerError):
    """A post or void came at or after the pending transfer's `expires_at`."""

    def __init__(self, pending_id: str, expires_at: datetime) -> None:
        super().__init__(f"pending transfer {pending_id!r} expired at {expires_at.isoformat()}")
        self.pending_id = pending_id
        self.expires_at = expires_at


class AmountExceedsPendingError(LedgerError):
    """A post or void asks for more than the pending transfer holds."""

    def __init__(self, pending_id: str, amount_micros: int, pending_amount_micros: int) -> None:
        super().__init__(
            f"amount {amount_micros} micros exceeds the {pending_amount_micros} micros"
            f" held by pending transfer {pending_id!r}"
        )
        self.pending_id = pending_id
        self.amount_micros = amount_micros
        self.pending_amount_micros = pending_amount_micros


class PendingTransferMismatchError(LedgerError):
    """A post or void names accounts other than the pending transfer's."""

    def __init__(self, pending_id: str, field_name: str) -> None:
        super().__init__(f"the {field_name} differs from the one of pending transfer {pending_id!r}")
        self.pending_id = pending_id
        self.field_name = field_name


class LinkedTransferFailedError(LedgerError):
    """This request was not applied because another request of its linked chain failed."""

    def __init__(self, request_id: str, failing_request_id: str, cause: TransferError) -> None:
        super().__init__(
            f"transfer {request_id!r} was not applied: linked transfer {failing_request_id!r} failed: {cause}"
        )
        self.request_id = request_id
        self.failing_request_id = failing_request_id
        self.cause = cause


class OwnerIdTakenError(LedgerError):
    """An owner id is already the id of an owner of another kind: ids are unique across kinds."""

    def __init__(self, owner_id: str, kind: str, taken_by_kind: str) -> None:
        super().__init__(f"the id {owner_id!r} is already taken (by a {taken_by_kind.replace('_', ' ')})")
        self.owner_id = owner_id
        self.kind = kind
        self.taken_by_kind = taken_by_kind


class LinkedChainOpenError(LedgerError):
    """The batch ended inside a linked chain (its last request had `linked=True`)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"transfer {request_id!r} belongs to a linked chain that the batch never closed")
        self.request_id = request_id


#: Every error a single transfer request can end with. The currency error is the shared one of
#: `adledger_libs.money`, so callers catch one type for rule M2 everywhere.
TransferError = LedgerError | CurrencyMismatchError


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _require_micros(name: str, value: object, *, allow_none: bool = False) -> None:
    """Money is an int, never a float or a bool (rule M1); a float is a type error, loudly."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of micros, got {type(value).__name__} (rule M1)")
    if not 0 <= value <= _MAXIMUM_MICROS:
        raise InvalidTransferError(f"{name} must be between 0 and {_MAXIMUM_MICROS} micros, got {value}")


def _require_currency(value: object) -> None:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise InvalidTransferError(f"currency must be an ISO-4217 code of three upper-case letters, got {value!r}")


def _require_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= _MAXIMUM_ID_LENGTH:
        raise InvalidTransferError(f"{name} must be a non-empty string of at most {_MAXIMUM_ID_LENGTH} characters")
    if _CONTROL_CHARACTER.search(value):
        # PostgreSQL cannot store a NUL byte; no id of the ledger holds any control character.
        raise InvalidTransferError(f"{name} must not contain control characters")


def _require_utc(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise InvalidTransferError(f"{name} must be a timezone-aware datetime in UTC (rule T1)")


def _frozen_user_data(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy of JSON-compatible data without floats (rule M1: money never as a float)."""
    if not isinstance(value, Mapping):
        raise InvalidTransferError("user_data must be a mapping")
    _check_json_value("user_data", value)
    return MappingProxyType(dict(value))


def _check_json_value(path: str, value: object) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidTransferError(f"{path} holds a NUL character, which PostgreSQL's jsonb cannot store")
        return
    if isinstance(value, int) and not isinstance(value, bool) and not -_MAXIMUM_MICROS <= value <= _MAXIMUM_MICROS:
        raise InvalidTransferError(f"{path} holds an integer beyond 64 bits")
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        raise TypeError(f"{path} holds a float; amounts are int micros (rule M1)")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                raise InvalidTransferError(f"{path} has a key that is not a string without NUL: {key!r}")
            _check_json_value(f"{path}.{key}", item)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json_value(f"{path}[{index}]", item)
        return
    raise InvalidTransferError(f"{path} holds a {type(value).__name__}, which JSON cannot store")


@dataclass(frozen=True, kw_only=True)
class Account:
    """A ledger account: one currency, four running totals, and at most one balance guard.

    Accounts are credit-normal from the owner's point of view: money in is a credit, money out
    a debit. A customer's balance is guarded with `debits_must_not_exceed_credits`; a system
    account such as `world:payments` is not guarded, so its balance goes negative as money
    enters the platform, which keeps the sum of all balances at zero (rule M3).
    """

    id: str
    currency: str
    code: str
    owner_id: str | None = None
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    debits_posted_micros: int = 0
    credits_posted_micros: int = 0
    debits_pending_micros: int = 0
    credits_pending_micros: int = 0

    def __post_init__(self) -> None:
        try:
            _require_id("account id", self.id)
            _require_currency(self.currency)
            _require_id("account code", self.code)
            if self.owner_id is not None:
                _require_id("owner_id", self.owner_id)
            for name in _TOTAL_NAMES:
                _require_micros(name, getattr(self, name))
        except InvalidTransferError as error:
            raise InvalidAccountError(str(error)) from None
        if self.debits_must_not_exceed_credits and self.credits_must_not_exceed_debits:
            raise InvalidAccountError(f"account {self.id!r} cannot have both balance guards")

    def same_definition(self, other: Account) -> bool:
        """Whether two accounts are defined alike, whatever their balances."""
        return _account_definition(self) == _account_definition(other)


def _account_definition(account: Account) -> tuple[object, ...]:
    return tuple(getattr(account, name) for name in _DEFINITION_NAMES)


def balance(account: Account) -> int:
    """Posted credits minus posted debits: what the owner has, holds not subtracted (rule W11 real)."""
    return account.credits_posted_micros - account.debits_posted_micros


def available(account: Account) -> int:
    """What the owner can still spend: the balance minus the pending debits (holds)."""
    return account.credits_posted_micros - account.debits_posted_micros - account.debits_pending_micros


class TransferKind(StrEnum):
    """What a transfer does; the flags of a request map onto exactly one kind."""

    SINGLE = "single"  # Posted at once.
    PENDING = "pending"  # A hold, resolved later.
    POST_PENDING = "post_pending"  # Posts all or part of a hold, releasing the rest.
    VOID_PENDING = "void_pending"  # Releases a hold.


class ResolutionKind(StrEnum):
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True, kw_only=True)
class PendingResolution:
    """How a pending transfer ended. `resolving_transfer_id` is None only for an expiry."""

    pending_id: str
    kind: ResolutionKind
    resolving_transfer_id: str | None
    resolved_at: datetime


@dataclass(frozen=True, kw_only=True)
class TransferRequest:
    """A request to move money; `id` is the caller's idempotency key (rule M5).

    - A plain transfer and a `pending` one need both account ids and an `amount_micros` > 0.
    - A `post_pending` or `void_pending` transfer names `pending_id`; its account ids may be
      None (they are the pending transfer's) or must equal the pending transfer's. For a post,
      `amount_micros` None (or 0) means the whole held amount; a smaller amount posts part and
      releases the rest. A void releases the whole amount (None, 0 or exactly the held amount).
    - `expires_at` is only for a pending transfer: from that moment on it can no longer be
      posted or voided and the expiry sweep releases it.
    - `linked=True` links this request with the next one of the batch: the chain (up to the
      first request without `linked`) is applied entirely or not at all.
    Malformed requests fail here, at construction: a float amount is a `TypeError` (rule M1).
    """

    id: str
    debit_account_id: str | None = None
    credit_account_id: str | None = None
    amount_micros: int | None = None
    currency: str
    code: str
    pending: bool = False
    post_pending: bool = False
    void_pending: bool = False
    pending_id: str | None = None
    expires_at: datetime | None = None
    user_data: Mapping[str, Any] = field(default_factory=dict, hash=False)
    linked: bool = False

    def __post_init__(self) -> None:
        _require_id("transfer id", self.id)
        _require_micros("amount_micros", self.amount_micros, allow_none=True)
        _require_currency(self.currency)
        _require_id("transfer code", self.code)
        for name in ("pending", "post_pending", "void_pending", "linked"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidTransferError(f"{name} must be a bool")
        if self.pending + self.post_pending + self.void_pending > 1:
            raise InvalidTransferError("at most one of pending, post_pending and void_pending may be set")
        for name in ("debit_account_id", "credit_account_id"):
            if getattr(self, name) is not None:
                _require_id(name, getattr(self, name))
        if self.debit_account_id is not None and self.debit_account_id == self.credit_account_id:
            raise SameAccountError(self.debit_account_id)
        if self.post_pending or self.void_pending:
            if self.pending_id is None:
                raise InvalidTransferError("a post or void names the pending transfer in pending_id")
            _require_id("pending_id", self.pending_id)
            if self.pending_id == self.id:
                raise InvalidTransferError("a post or void cannot resolve itself")
            if self.expires_at is not None:
                raise InvalidTransferError("only a pending transfer has expires_at")
            if self.amount_micros == 0:
                # Zero and None both mean "the whole held amount"; one spelling keeps the
                # idempotency comparison of a repeated request exact.
                object.__setattr__(self, "amount_micros", None)
        else:
            if self.pending_id is not None:
                raise InvalidTransferError("only a post or void names a pending_id")
            if self.debit_account_id is None or self.credit_account_id is None:
                raise InvalidTransferError("a transfer names both its debit and its credit account")
            if self.amount_micros is None or self.amount_micros <= 0:
                raise InvalidTransferError("amount_micros must be greater than zero")
            if self.expires_at is not None:
                if not self.pending:
                    raise InvalidTransferError("only a pending transfer has expires_at")
                _require_utc("expires_at", self.expires_at)
        object.__setattr__(self, "user_data", _frozen_user_data(self.user_data))

    @property
    def kind(self) -> TransferKind:
        if self.pending:
            return TransferKind.PENDING
        if self.post_pending:
            return TransferKind.POST_PENDING
        if self.void_pending:
            return TransferKind.VOID_PENDING
        return TransferKind.SINGLE


@dataclass(frozen=True, kw_only=True)
class Transfer:
    """A stored transfer: immutable. `resolution` is set on a pending transfer once resolved;
    it is derived from the transfer (or expiry) that resolved it, not a change of this record."""

    id: str
    debit_account_id: str
    credit_account_id: str
    amount_micros: int
    currency: str
    code: str
    kind: TransferKind
    pending_id: str | None
    expires_at: datetime | None
    user_data: Mapping[str, Any] = field(hash=False)
    created_at: datetime
    resolution: PendingResolution | None = None

    def __post_init__(self) -> None:
        _require_micros("amount_micros", self.amount_micros)
        if self.amount_micros <= 0:
            raise InvalidTransferError(f"transfer {self.id!r} has a non-positive amount")
        if self.resolution is not None and self.kind is not TransferKind.PENDING:
            raise InvalidTransferError(f"only a pending transfer has a resolution, not {self.id!r}")
        object.__setattr__(self, "user_data", MappingProxyType(dict(self.user_data)))

    @property
    def pending(self) -> bool:
        return self.kind is TransferKind.PENDING

    @property
    def post_pending(self) -> bool:
        return self.kind is TransferKind.POST_PENDING

    @property
    def void_pending(self) -> bool:
        return self.kind is TransferKind.VOID_PENDING


@dataclass(frozen=True)
class TransferResult:
    """The answer to one request: the transfer, or the error that refused it.

    `replayed` is True when the id had already been applied: `transfer` is then the stored
    first result (for a pending transfer, with its current resolution) and nothing was applied.
    """

    request_id: str
    transfer: Transfer | None
    error: TransferError | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> Transfer:
        """The transfer; raises the typed error when the request was refused."""
        if self.error is not None:
            raise self.error
        assert self.transfer is not None
        return self.transfer


def raise_first_error(results: Sequence[TransferResult]) -> list[Transfer]:
    """The transfers of a batch, or the first error of it raised (for callers of one request)."""
    return [result.unwrap() for result in results]


# --------------------------------------------------------------------------------------------
# Opening accounts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountOpening:
    """`new_accounts` are to be stored; `accounts` answers each requested account in order."""

    new_accounts: tuple[Account, ...]
    accounts: tuple[Account, ...]


def open_accounts(existing: Mapping[str, Account], requested: Sequence[Account]) -> AccountOpening:
    """Idempotent account creation: an existing account defined alike is returned as it is.

    Raises:
        IdempotencyConflictError: an account id exists (or repeats in `requested`) with another
            currency, code, owner or guard.
        InvalidAccountError: a new account does not start with zero totals.
    """
    known: dict[str, Account] = {}
    new_accounts: dict[str, Account] = {}
    answers: list[Account] = []
    for account in requested:
        previous = known.get(account.id) or existing.get(account.id)
        if previous is not None:
            if not previous.same_definition(account):
                differing = [
                    name
                    for name, left, right in zip(
                        _DEFINITION_NAMES,
                        _account_definition(previous),
                        _account_definition(account),
                        strict=True,
                    )
                    if left != right
                ]
                raise IdempotencyConflictError(account.id, differing)
            answers.append(previous)
            continue
        if (
            account.debits_posted_micros
            or account.credits_posted_micros
            or account.debits_pending_micros
            or account.credits_pending_micros
        ):
            raise InvalidAccountError(f"account {account.id!r} must open with zero totals; move money with transfers")
        known[account.id] = account
        new_accounts[account.id] = account
        answers.append(account)
    return AccountOpening(tuple(new_accounts.values()), tuple(answers))


# --------------------------------------------------------------------------------------------
# Applying transfers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferBatchOutcome:
    """What a batch changed, for the adapter to store, and the answer to each request.

    `changed_accounts` hold their new totals. `new_transfers` are in the order they were
    created, each in its final state (a pending one created and resolved in the same batch has
    its resolution). `new_resolutions` resolve pending transfers, old or new.
    """

    results: tuple[TransferResult, ...]
    changed_accounts: tuple[Account, ...]
    new_transfers: tuple[Transfer, ...]
    new_resolutions: tuple[PendingResolution, ...]


@dataclass(frozen=True)
class ExpiryOutcome:
    """The pending transfers that expired (with their resolution) and the accounts released."""

    expired: tuple[Transfer, ...]
    changed_accounts: tuple[Account, ...]
    new_resolutions: tuple[PendingResolution, ...]


_ABSENT = object()


class _Book:
    """The working state of one batch, layered over the state the caller passed in.

    Writes go to an overlay, so the caller's mappings are never copied or changed. A journal
    remembers what a linked chain overwrote so that a failing chain can be undone entirely.
    """

    def __init__(self, accounts: Mapping[str, Account], transfers: Mapping[str, Transfer]) -> None:
        self._base_accounts = accounts
        self._base_transfers = transfers
        self._accounts: dict[str, Account] = {}
        self._transfers: dict[str, Transfer] = {}
        self.created_transfer_ids: list[str] = []
        self.resolved_pending_ids: list[str] = []
        self._journal: list[tuple[dict[str, Any], str, object]] | None = None
        self._mark: tuple[int, int] = (0, 0)

    def account(self, account_id: str) -> Account | None:
        return self._accounts.get(account_id) or self._base_accounts.get(account_id)

    def transfer(self, transfer_id: str) -> Transfer | None:
        return self._transfers.get(transfer_id) or self._base_transfers.get(transfer_id)

    def put_account(self, account: Account) -> None:
        self._put(self._accounts, account.id, account)

    def put_transfer(self, transfer: Transfer) -> None:
        self._put(self._transfers, transfer.id, transfer)

    def _put(self, overlay: dict[str, Any], key: str, value: object) -> None:
        if self._journal is not None:
            self._journal.append((overlay, key, overlay.get(key, _ABSENT)))
        overlay[key] = value

    def begin(self) -> None:
        self._journal = []
        self._mark = (len(self.created_transfer_ids), len(self.resolved_pending_ids))

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        assert self._journal is not None
        for overlay, key, previous in reversed(self._journal):
            if previous is _ABSENT:
                del overlay[key]
            else:
                overlay[key] = previous
        del self.created_transfer_ids[self._mark[0] :]
        del self.resolved_pending_ids[self._mark[1] :]
        self._journal = None

    def changed_accounts(self) -> tuple[Account, ...]:
        return tuple(
            account for account_id, account in self._accounts.items() if self._base_accounts.get(account_id) != account
        )


def _require_now(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise ValueError("now must be a timezone-aware datetime in UTC (rule T1)")


def apply_transfers(
    accounts: Mapping[str, Account],
    transfers: Mapping[str, Transfer],
    requests: Sequence[TransferRequest],
    now: datetime,
) -> TransferBatchOutcome:
    """Apply a batch of requests in order and say what changed.

    `accounts` must hold every existing account the requests (and the pending transfers they
    resolve) name, and only accounts the caller may change; `transfers` must hold every stored
    transfer whose id is a request id or a `pending_id` of the batch, with its resolution. A
    request naming an account absent from `accounts` fails with `UnknownAccountError`.

    Each request ends with a `TransferResult`; a refused request (or linked chain) applies
    nothing and the others still apply. Errors per request: `UnknownAccountError`,
    `CurrencyMismatchError`, `InsufficientFundsError`, `IdempotencyConflictError`,
    `PendingTransferNotFoundError`, `PendingTransferAlreadyResolvedError`,
    `PendingTransferExpiredError`, `AmountExceedsPendingError`, `PendingTransferMismatchError`,
    `InvalidTransferError`, `LinkedTransferFailedError`, `LinkedChainOpenError`.
    """
    _require_now(now)
    book = _Book(accounts, transfers)
    results: list[TransferResult] = []
    start = 0
    while start < len(requests):
        end = start
        while end < len(requests) and requests[end].linked:
            end += 1
        if end == len(requests):
            # The batch ended inside a chain: the chain's extent is unknown, so none of it applies.
            results.extend(
                TransferResult(request.id, None, LinkedChainOpenError(request.id)) for request in requests[start:]
            )
            break
        chain = requests[start : end + 1]
        start = end + 1
        if len(chain) == 1:
            results.append(_apply_or_refuse(book, chain[0], now))
            continue
        book.begin()
        chain_results: list[TransferResult] = []
        for request in chain:
            result = _apply_or_refuse(book, request, now)
            if result.error is not None:
                book.rollback()
                failure = result.error
                chain_results = [
                    result
                    if member is request
                    else TransferResult(member.id, None, LinkedTransferFailedError(member.id, request.id, failure))
                    for member in chain
                ]
                break
            chain_results.append(result)
        else:
            book.commit()
        results.extend(chain_results)
    new_transfers = tuple(book.transfer(transfer_id) for transfer_id in book.created_transfer_ids)
    resolutions = []
    for pending_id in book.resolved_pending_ids:
        resolved = book.transfer(pending_id)
        assert resolved is not None and resolved.resolution is not None
        resolutions.append(resolved.resolution)
    return TransferBatchOutcome(
        results=tuple(results),
        changed_accounts=book.changed_accounts(),
        new_transfers=tuple(transfer for transfer in new_transfers if transfer is not None),
        new_resolutions=tuple(resolutions),
    )


def _apply_or_refuse(book: _Book, request: TransferRequest, now: datetime) -> TransferResult:
    try:
        return _apply(book, request, now)
    except (LedgerError, CurrencyMismatchError) as error:
        return TransferResult(request.id, None, error)


def _apply(book: _Book, request: TransferRequest, now: datetime) -> TransferResult:
    """Apply one request, or raise before changing anything."""
    pending = book.transfer(request.pending_id) if request.pending_id is not None else None
    existing = book.transfer(request.id)
    if existing is not None:
        differing = _differing_fields(request, existing, pending)
        if differing:
            raise IdempotencyConflictError(request.id, differing)
        return TransferResult(request.id, existing, replayed=True)
    if request.pending or request.kind is TransferKind.SINGLE:
        return _apply_new_movement(book, request, now)
    return _apply_resolution(book, request, pending, now)


def _effective_fields(request: TransferRequest, pending: Transfer | None) -> dict[str, object]:
    """The fields a request asks for, with a post's or void's blanks filled from its pending transfer."""
    debit_account_id = request.debit_account_id
    credit_account_id = request.credit_account_id
    amount_micros = request.amount_micros
    if pending is not None and (request.post_pending or request.void_pending):
        debit_account_id = debit_account_id or pending.debit_account_id
        credit_account_id = credit_account_id or pending.credit_account_id
        if amount_micros is None:
            amount_micros = pending.amount_micros
    return {
        "debit_account_id": debit_account_id,
        "credit_account_id": credit_account_id,
        "amount_micros": amount_micros,
        "currency": request.currency,
        "code": request.code,
        "kind": request.kind,
        "pending_id": request.pending_id,
        "expires_at": request.expires_at,
        "user_data": dict(request.user_data),
    }


def _differing_fields(request: TransferRequest, existing: Transfer, pending: Transfer | None) -> list[str]:
    asked = _effective_fields(request, pending)
    stored = {
        "debit_account_id": existing.debit_account_id,
        "credit_account_id": existing.credit_account_id,
        "amount_micros": existing.amount_micros,
        "currency": existing.currency,
        "code": existing.code,
        "kind": existing.kind,
        "pending_id": existing.pending_id,
        "expires_at": existing.expires_at,
        "user_data": dict(existing.user_data),
    }
    return [name for name, value in asked.items() if stored[name] != value]


def _known_account(book: _Book, account_id: str) -> Account:
    account = book.account(account_id)
    if account is None:
        raise UnknownAccountError(account_id)
    return account


def _check_guards(debit_account: Account, credit_account: Account, amount_micros: int) -> None:
    """Refuse a movement that would take a guarded account past its limit; holds count."""
    if debit_account.debits_must_not_exceed_credits:
        available_micros = available(debit_account)
        if amount_micros > available_micros:
            raise InsufficientFundsError(
                debit_account.id, amount_micros, max(available_micros, 0), "debits_must_not_exceed_credits"
            )
    if credit_account.credits_must_not_exceed_debits:
        available_micros = (
            credit_account.debits_posted_micros
            - credit_account.credits_posted_micros
            - credit_account.credits_pending_micros
        )
        if amount_micros > available_micros:
            raise InsufficientFundsError(
                credit_account.id, amount_micros, max(available_micros, 0), "credits_must_not_exceed_debits"
            )


def _with_totals(
    account: Account,
    *,
    debits_posted_micros: int | None = None,
    credits_posted_micros: int | None = None,
    debits_pending_micros: int | None = None,
    credits_pending_micros: int | None = None,
) -> Account:
    """The account with new totals. It skips `__post_init__` on purpose: the definition was
    validated when the account was made, the totals here are ints computed by this module,
    and the spend consumer moves money on this path at a very high rate."""
    moved = object.__new__(Account)
    moved.__dict__.update(account.__dict__)
    for name, value in (
        ("debits_posted_micros", debits_posted_micros),
        ("credits_posted_micros", credits_posted_micros),
        ("debits_pending_micros", debits_pending_micros),
        ("credits_pending_micros", credits_pending_micros),
    ):
        if value is not None:
            moved.__dict__[name] = value
    return moved


def _checked_total(account: Account, name: str, value: int) -> int:
    if value > _MAXIMUM_MICROS:
        raise InvalidTransferError(f"the {name} of account {account.id!r} would overflow")
    return value


def _apply_new_movement(book: _Book, request: TransferRequest, now: datetime) -> TransferResult:
    """A plain transfer (posted at once) or a pending one (a hold)."""
    assert request.debit_account_id is not None and request.credit_account_id is not None
    assert request.amount_micros is not None
    debit_account = _known_account(book, request.debit_account_id)
    credit_account = _known_account(book, request.credit_account_id)
    if debit_account.currency != request.currency:
        raise CurrencyMismatchError(debit_account.currency, request.currency)
    if credit_account.currency != request.currency:
        raise CurrencyMismatchError(credit_account.currency, request.currency)
    if request.expires_at is not None and request.expires_at <= now:
        raise InvalidTransferError(f"pending transfer {request.id!r} would expire before it is created")
    amount_micros = request.amount_micros
    _check_guards(debit_account, credit_account, amount_micros)
    if request.pending:
        new_debit_account = _with_totals(
            debit_account,
            debits_pending_micros=_checked_total(
                debit_account, "pending debits", debit_account.debits_pending_micros + amount_micros
            ),
        )
        new_credit_account = _with_totals(
            credit_account,
            credits_pending_micros=_checked_total(
                credit_account, "pending credits", credit_account.credits_pending_micros + amount_micros
            ),
        )
    else:
        new_debit_account = _with_totals(
            debit_account,
            debits_posted_micros=_checked_total(
                debit_account, "posted debits", debit_account.debits_posted_micros + amount_micros
            ),
        )
        new_credit_account = _with_totals(
            credit_account,
            credits_posted_micros=_checked_total(
                credit_account, "posted credits", credit_account.credits_posted_micros + amount_micros
            ),
        )
    transfer = Transfer(
        id=request.id,
        debit_account_id=debit_account.id,
        credit_account_id=credit_account.id,
        amount_micros=amount_micros,
        currency=request.currency,
        code=request.code,
        kind=request.kind,
        pending_id=None,
        expires_at=request.expires_at,
        user_data=request.user_data,
        created_at=now,
    )
    book.put_account(new_debit_account)
    book.put_account(new_credit_account)
    book.put_transfer(transfer)
    book.created_transfer_ids.append(transfer.id)
    return TransferResult(request.id, transfer)


def _apply_resolution(book: _Book, request: TransferRequest, pending: Transfer | None, now: datetime) -> TransferResult:
    """A post (whole or part) or a void of a pending transfer."""
    assert request.pending_id is not None
    if pending is None:
        raise PendingTransferNotFoundError(request.pending_id)
    if pending.kind is not TransferKind.PENDING:
        raise PendingTransferNotFoundError(request.pending_id, f"is a {pending.kind.value} transfer, not a pending one")
    if pending.resolution is not None:
        raise PendingTransferAlreadyResolvedError(pending.id, pending.resolution)
    if pending.expires_at is not None and now >= pending.expires_at:
        raise PendingTransferExpiredError(pending.id, pending.expires_at)
    if request.debit_account_id is not None and request.debit_account_id != pending.debit_account_id:
        raise PendingTransferMismatchError(pending.id, "debit_account_id")
    if request.credit_account_id is not None and request.credit_account_id != pending.credit_account_id:
        raise PendingTransferMismatchError(pending.id, "credit_account_id")
    if request.currency != pending.currency:
        raise CurrencyMismatchError(pending.currency, request.currency)
    amount_micros = pending.amount_micros if request.amount_micros is None else request.amount_micros
    if amount_micros > pending.amount_micros:
        raise AmountExceedsPendingError(pending.id, amount_micros, pending.amount_micros)
    if request.void_pending and amount_micros != pending.amount_micros:
        raise InvalidTransferError("a void releases the whole held amount; post part of it instead")
    debit_account = _known_account(book, pending.debit_account_id)
    credit_account = _known_account(book, pending.credit_account_id)
    # The hold leaves the pending totals whole; only a post adds the posted part. Posting never
    # needs a guard check: posted plus pending debits can only shrink or stay equal.
    posted_micros = amount_micros if request.post_pending else 0
    new_debit_account = _with_totals(
        debit_account,
        debits_pending_micros=debit_account.debits_pending_micros - pending.amount_micros,
        debits_posted_micros=_checked_total(
            debit_account, "posted debits", debit_account.debits_posted_micros + posted_micros
        ),
    )
    new_credit_account = _with_totals(
        credit_account,
        credits_pending_micros=credit_account.credits_pending_micros - pending.amount_micros,
        credits_posted_micros=_checked_total(
            credit_account, "posted credits", credit_account.credits_posted_micros + posted_micros
        ),
    )
    transfer = Transfer(
        id=request.id,
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        amount_micros=amount_micros,
        currency=request.currency,
        code=request.code,
        kind=request.kind,
        pending_id=pending.id,
        expires_at=None,
        user_data=request.user_data,
        created_at=now,
    )
    resolution = PendingResolution(
        pending_id=pending.id,
        kind=ResolutionKind.POSTED if request.post_pending else ResolutionKind.VOIDED,
        resolving_transfer_id=transfer.id,
        resolved_at=now,
    )
    book.put_account(new_debit_account)
    book.put_account(new_credit_account)
    book.put_transfer(transfer)
    book.put_transfer(replace(pending, resolution=resolution))
    book.created_transfer_ids.append(transfer.id)
    book.resolved_pending_ids.append(pending.id)
    return TransferResult(request.id, transfer)


def expire_pending(
    accounts: Mapping[str, Account], pending_transfers: Sequence[Transfer], now: datetime
) -> ExpiryOutcome:
    """Release every unresolved pending transfer whose `expires_at` has come (at or before `now`).

    Transfers that are not pending, already resolved or not yet due are left alone, so a sweep
    that runs twice, or races a post, resolves each pending transfer at most once. `accounts`
    must hold the accounts of the due transfers.
    """
    _require_now(now)
    book = _Book(accounts, {})
    expired: list[Transfer] = []
    resolutions: list[PendingResolution] = []
    due = sorted(
        (
            transfer
            for transfer in pending_transfers
            if transfer.kind is TransferKind.PENDING
            and transfer.resolution is None
            and transfer.expires_at is not None
            and transfer.expires_at <= now
        ),
        key=lambda transfer: (transfer.expires_at, transfer.id),
    )
    for transfer in dict((transfer.id, transfer) for transfer in due).values():
        debit_account = _known_account(book, transfer.debit_account_id)
        credit_account = _known_account(book, transfer.credit_account_id)
        book.put_account(
            _with_totals(
                debit_account, debits_pending_micros=debit_account.debits_pending_micros - transfer.amount_micros
            )
        )
        book.put_account(
            _with_totals(
                credit_account, credits_pending_micros=credit_account.credits_pending_micros - transfer.amount_micros
            )
        )
        resolution = PendingResolution(
            pending_id=transfer.id, kind=ResolutionKind.EXPIRED, resolving_transfer_id=None, resolved_at=now
        )
        resolutions.append(resolution)
        expired.append(replace(transfer, resolution=resolution))
    return ExpiryOutcome(tuple(expired), book.changed_accounts(), tuple(resolutions))
