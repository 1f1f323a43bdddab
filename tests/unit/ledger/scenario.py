"""Random ledger scenarios and the invariants every step must keep (rules M1-M5).

A scenario is a list of steps drawn by hypothesis: batches of transfers (plain, pending, posts
of all or part of a hold, voids, repeats of earlier requests, ids reused with other fields,
linked chains where one member may fail) and expiry sweeps after the clock moved. The same
`ScenarioRunner` drives the in-memory fake (unit tests) and PostgreSQL (integration tests), so
both are held to one set of invariants, and the integration test compares their answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import strategies as st

from adledger_ledger.domain import (
    Account,
    IdempotencyConflictError,
    LinkedTransferFailedError,
    SameAccountError,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferResult,
)
from adledger_ledger.ports import Ledger

Result = TypeVar("Result")

ACCOUNTS = (
    Account(id="world:payments:usd", currency="USD", code="world"),
    Account(id="world:payments:eur", currency="EUR", code="world"),
    Account(id="bc:1:cash", currency="USD", code="cash", owner_id="bc:1", debits_must_not_exceed_credits=True),
    Account(id="bc:2:cash", currency="USD", code="cash", owner_id="bc:2", debits_must_not_exceed_credits=True),
    Account(id="platform:revenue:usd", currency="USD", code="revenue"),
    Account(id="bc:1:credit_line", currency="USD", code="credit_line", credits_must_not_exceed_debits=True),
    Account(id="bc:3:cash", currency="EUR", code="cash", owner_id="bc:3", debits_must_not_exceed_credits=True),
    Account(id="platform:revenue:eur", currency="EUR", code="revenue"),
)
ACCOUNT_IDS = tuple(account.id for account in ACCOUNTS)
CURRENCY_OF = {account.id: account.currency for account in ACCOUNTS}
# An id that no account has, so that some requests fail with UnknownAccountError.
GHOST_ACCOUNT_ID = "ghost:account"
START = datetime(2030, 1, 1, tzinfo=UTC)


def completed(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """Run a coroutine that never suspends (the in-memory fake) to its end, without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        value: Result = stop.value
        return value
    coroutine.close()
    raise AssertionError("the coroutine suspended; it needs an event loop")


# ------------------------------------------------------------------------------------------
# Steps
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """A plain or pending transfer. `reuse` picks an id used before (None: a fresh id).

    The credited account is one of the debited account's currency, except when
    `cross_currency` (rule M2) or `ghost_account` (an account that does not exist) say otherwise.
    """

    reuse: int | None
    debit_choice: int
    credit_choice: int
    cross_currency: bool
    ghost_account: bool
    amount_micros: int
    pending: bool
    expires_after_seconds: int | None
    note: str


@dataclass(frozen=True)
class Resolve:
    """A post (all or part) or a void of a hold picked among the pending ids seen so far:
    an open one when `open_hold`, else any (so some were resolved or expired already)."""

    reuse: int | None
    pending_choice: int
    open_hold: bool
    unknown_pending: bool
    post: bool
    amount_micros: int | None


@dataclass(frozen=True)
class Repeat:
    """Send an earlier request again, unchanged."""

    history_choice: int


@dataclass(frozen=True)
class Chain:
    members: tuple[Move | Resolve, ...]


@dataclass(frozen=True)
class Batch:
    items: tuple[Move | Resolve | Repeat | Chain, ...]


@dataclass(frozen=True)
class Expire:
    advance_seconds: int


Step = Batch | Expire

_reuse = st.one_of(st.none(), st.none(), st.none(), st.none(), st.integers(0, 1_000))
_amount_micros = st.one_of(st.integers(1, 2_000), st.sampled_from([1, 500, 1_000_000]))
# The world accounts come first and are drawn more often, so money flows into the guarded
# accounts and spends from them succeed often enough to matter.
_debit_choice = st.one_of(st.integers(0, 1), st.integers(0, len(ACCOUNT_IDS) - 1))
_rarely = st.sampled_from([False] * 9 + [True])
moves = st.builds(
    Move,
    reuse=_reuse,
    debit_choice=_debit_choice,
    credit_choice=st.integers(0, 1_000),
    cross_currency=_rarely,
    ghost_account=_rarely,
    amount_micros=_amount_micros,
    pending=st.booleans(),
    expires_after_seconds=st.one_of(st.none(), st.integers(1, 120)),
    note=st.sampled_from(["a", "b"]),
)
resolves = st.builds(
    Resolve,
    reuse=_reuse,
    pending_choice=st.integers(0, 1_000),
    open_hold=st.sampled_from([True, True, True, False]),
    unknown_pending=_rarely,
    post=st.booleans(),
    amount_micros=st.one_of(st.none(), st.integers(1, 2_000)),
)
repeats = st.builds(Repeat, history_choice=st.integers(0, 1_000))
chains = st.builds(Chain, members=st.lists(st.one_of(moves, moves, resolves), min_size=2, max_size=4).map(tuple))
batches = st.builds(
    Batch,
    items=st.lists(
        st.one_of(moves, moves, moves, resolves, resolves, repeats, chains), min_size=1, max_size=4
    ).map(tuple),
)
expiries = st.builds(Expire, advance_seconds=st.integers(0, 150))
scenarios = st.lists(st.one_of(batches, batches, batches, expiries), min_size=1, max_size=25)


# ------------------------------------------------------------------------------------------
# Running and checking
# ------------------------------------------------------------------------------------------

#: Opens one database transaction (or nothing, for the fake) and yields the ledger's session.
OpenTransaction = Callable[[], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def no_transaction() -> AsyncIterator[None]:
    yield None


def _without_resolution(transfer: Transfer | None) -> Transfer | None:
    return None if transfer is None else replace(transfer, resolution=None)


@dataclass
class ScenarioRunner:
    """Applies steps to a ledger and checks every invariant after each of them.

    `observations` records every answer, so two ledgers given the same steps can be compared.
    """

    ledger: Ledger[Any]
    open_transaction: OpenTransaction = no_transaction
    now: datetime = START
    observations: list[tuple[object, ...]] = field(default_factory=list)
    _fresh_counter: int = 0
    _used_ids: list[str] = field(default_factory=list)
    _history: list[TransferRequest] = field(default_factory=list)
    _pending_ids: list[str] = field(default_factory=list)
    _pending_currency: dict[str, str] = field(default_factory=dict)
    _first_results: dict[str, Transfer] = field(default_factory=dict)
    _resolved_pending_ids: set[str] = field(default_factory=set)

    async def open_accounts(self) -> None:
        async with self.open_transaction() as session:
            created = await self.ledger.create_accounts(session, ACCOUNTS)
        assert [account.id for account in created] == list(ACCOUNT_IDS)

    async def run(self, steps: Sequence[Step]) -> None:
        await self.open_accounts()
        await self.check_invariants()
        for step in steps:
            await self.apply(step)
            await self.check_invariants()

    async def apply(self, step: Step) -> None:
        before = await self._balances()
        if isinstance(step, Expire):
            self.now += timedelta(seconds=step.advance_seconds)
            async with self.open_transaction() as session:
                expired = await self.ledger.expire_pending(session, self.now)
            for transfer in expired:
                # A hold resolves at most once (rule M4), expiry included.
                assert transfer.resolution is not None and transfer.resolution.resolving_transfer_id is None
                assert transfer.id not in self._resolved_pending_ids, f"{transfer.id} resolved twice"
                assert transfer.expires_at is not None and transfer.expires_at <= self.now
                self._resolved_pending_ids.add(transfer.id)
            self.observations.append(("expired", tuple(expired)))
            if not expired:
                assert await self._balances() == before
            return
        self.now += timedelta(seconds=1)
        requests, chain_spans = self._requests(step)
        if not requests:
            return
        async with self.open_transaction() as session:
            results = await self.ledger.create_transfers(session, requests, self.now)
        assert [result.request_id for result in results] == [request.id for request in requests]
        for start, end in chain_spans:
            self._check_chain(results[start:end])
        applied_any = False
        for position, (request, result) in enumerate(zip(requests, results, strict=True)):
            earlier_in_batch = any(other.id == request.id for other in requests[:position])
            applied_any |= self._check_result(request, result, earlier_in_batch=earlier_in_batch)
            self.observations.append(
                (
                    result.request_id,
                    result.ok,
                    result.replayed,
                    type(result.error).__name__,
                    str(result.error),
                    result.transfer,
                )
            )
        # Only holds that exist are worth resolving; a refused pending request is forgotten.
        self._pending_ids = [
            pending_id
            for pending_id in dict.fromkeys(self._pending_ids)
            if pending_id in self._first_results and self._first_results[pending_id].kind is TransferKind.PENDING
        ]
        if not applied_any:
            # Refusals and replays apply nothing (rules M5, M3).
            assert await self._balances() == before

    def _requests(self, batch: Batch) -> tuple[list[TransferRequest], list[tuple[int, int]]]:
        requests: list[TransferRequest] = []
        chain_spans: list[tuple[int, int]] = []
        for item in batch.items:
            if isinstance(item, Repeat):
                if self._history:
                    requests.append(replace(self._history[item.history_choice % len(self._history)], linked=False))
                continue
            if isinstance(item, Chain):
                members = [self._request(member, linked=True) for member in item.members]
                members = [member for member in members if member is not None]
                if members:
                    members[-1] = replace(members[-1], linked=False)
                    chain_spans.append((len(requests), len(requests) + len(members)))
                    requests.extend(members)
                continue
            request = self._request(item, linked=False)
            if request is not None:
                requests.append(request)
        return requests, chain_spans

    def _transfer_id(self, reuse: int | None) -> str:
        if reuse is not None and self._used_ids:
            return self._used_ids[reuse % len(self._used_ids)]
        self._fresh_counter += 1
        return f"transfer:{self._fresh_counter}"

    def _request(self, item: Move | Resolve, *, linked: bool) -> TransferRequest | None:
        transfer_id = self._transfer_id(item.reuse)
        if isinstance(item, Move):
            debit_account_id = ACCOUNT_IDS[item.debit_choice]
            currency = CURRENCY_OF[debit_account_id]
            candidates = [
                account.id
                for account in ACCOUNTS
                if (account.currency != currency) == item.cross_currency and account.id != debit_account_id
            ]
            credit_account_id = candidates[item.credit_choice % len(candidates)]
            if item.ghost_account:
                if item.credit_choice % 2:
                    credit_account_id = GHOST_ACCOUNT_ID
                else:
                    debit_account_id = GHOST_ACCOUNT_ID
            expires_at = None
            if item.pending and item.expires_after_seconds is not None:
                expires_at = self.now + timedelta(seconds=item.expires_after_seconds)
            try:
                request = TransferRequest(
                    id=transfer_id,
                    debit_account_id=debit_account_id,
                    credit_account_id=credit_account_id,
                    amount_micros=item.amount_micros,
                    currency=currency,
                    code="hold" if item.pending else "spend",
                    pending=item.pending,
                    expires_at=expires_at,
                    user_data={"note": item.note},
                    linked=linked,
                )
            except SameAccountError:
                # Refused at construction, before any ledger sees it.
                assert debit_account_id == credit_account_id
                return None
            if item.pending:
                self._pending_ids.append(transfer_id)
                self._pending_currency[transfer_id] = currency
        else:
            holds = self._pending_ids
            if item.open_hold:
                holds = [pending_id for pending_id in holds if pending_id not in self._resolved_pending_ids]
            if item.unknown_pending:
                pending_id = "ghost:hold"
            elif not holds:
                return None
            else:
                pending_id = holds[item.pending_choice % len(holds)]
            if pending_id == transfer_id:
                return None
            request = TransferRequest(
                id=transfer_id,
                pending_id=pending_id,
                amount_micros=item.amount_micros if item.post else None,
                currency=self._pending_currency.get(pending_id, "USD"),
                code="spend" if item.post else "release",
                post_pending=item.post,
                void_pending=not item.post,
                linked=linked,
            )
        self._used_ids.append(transfer_id)
        self._history.append(request)
        return request

    def _check_chain(self, results: Sequence[TransferResult]) -> None:
        """A linked chain applies entirely or not at all, and names the member that failed."""
        if all(result.ok for result in results):
            return
        assert not any(result.ok for result in results), "a linked chain applied in part"
        failing = [result for result in results if not isinstance(result.error, LinkedTransferFailedError)]
        assert len(failing) == 1, "exactly one member of a failed chain carries its own error"
        for result in results:
            if isinstance(result.error, LinkedTransferFailedError):
                assert result.error.failing_request_id == failing[0].request_id

    def _check_result(self, request: TransferRequest, result: TransferResult, *, earlier_in_batch: bool) -> bool:
        """Check one answer against what happened before; True when it applied something.

        `earlier_in_batch`: the id was used earlier in the same batch, perhaps by a member of a
        linked chain that was rolled back, so a conflict need not be with a stored transfer.
        """
        if result.replayed:
            # The same key twice applies once and answers the first result (rule M5).
            assert result.ok and request.id in self._first_results
            assert _without_resolution(result.transfer) == _without_resolution(self._first_results[request.id])
            return False
        if not result.ok:
            if isinstance(result.error, IdempotencyConflictError):
                assert request.id in self._first_results or earlier_in_batch
            return False
        transfer = result.unwrap()
        assert request.id not in self._first_results, f"{request.id} applied twice"
        assert transfer.id == request.id and isinstance(transfer.amount_micros, int) and transfer.amount_micros > 0
        self._first_results[request.id] = transfer
        if transfer.kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING):
            assert transfer.pending_id is not None
            assert transfer.pending_id not in self._resolved_pending_ids, f"{transfer.pending_id} resolved twice"
            self._resolved_pending_ids.add(transfer.pending_id)
        return True

    async def _balances(self) -> dict[str, Account]:
        async with self.open_transaction() as session:
            return await self.ledger.balances(session, ACCOUNT_IDS)

    async def check_invariants(self) -> None:
        async with self.open_transaction() as session:
            accounts = await self.ledger.balances(session, ACCOUNT_IDS)
            stored = await self.ledger.lookup_transfers(session, [*self._used_ids, "ghost:hold"])
        assert set(accounts) == set(ACCOUNT_IDS)
        assert set(stored) == set(self._first_results), "stored transfers are exactly the applied ones"
        check_balance_invariants(accounts.values(), stored.values())


def check_balance_invariants(accounts: Sequence[Account] | Any, transfers: Sequence[Transfer] | Any) -> None:
    """The invariants of rules M2-M4 over a whole ledger:

    - per currency, the balances sum to zero, posted and pending each (double entry);
    - no guarded account is past its limit, pending debits (holds) counted;
    - every account's totals are exactly the sum of the stored transfers (no lost update);
    - every hold resolved at most once, and only by a transfer that names it.
    """
    accounts = list(accounts)
    transfers = list(transfers)
    posted_sum_by_currency: dict[str, int] = defaultdict(int)
    pending_sum_by_currency: dict[str, int] = defaultdict(int)
    for account in accounts:
        posted_sum_by_currency[account.currency] += account.credits_posted_micros - account.debits_posted_micros
        pending_sum_by_currency[account.currency] += account.credits_pending_micros - account.debits_pending_micros
        if account.debits_must_not_exceed_credits:
            debits_micros = account.debits_posted_micros + account.debits_pending_micros
            assert debits_micros <= account.credits_posted_micros, account
        if account.credits_must_not_exceed_debits:
            credits_micros = account.credits_posted_micros + account.credits_pending_micros
            assert credits_micros <= account.debits_posted_micros, account
    assert all(total == 0 for total in posted_sum_by_currency.values()), posted_sum_by_currency
    assert all(total == 0 for total in pending_sum_by_currency.values()), pending_sum_by_currency

    expected: dict[str, list[int]] = {account.id: [0, 0, 0, 0] for account in accounts}
    resolvers: dict[str, list[Transfer]] = defaultdict(list)
    by_id = {transfer.id: transfer for transfer in transfers}
    for transfer in transfers:
        debit, credit = expected[transfer.debit_account_id], expected[transfer.credit_account_id]
        if transfer.kind in (TransferKind.SINGLE, TransferKind.POST_PENDING):
            debit[0] += transfer.amount_micros
            credit[1] += transfer.amount_micros
        if transfer.kind is TransferKind.PENDING and transfer.resolution is None:
            debit[2] += transfer.amount_micros
            credit[3] += transfer.amount_micros
        if transfer.pending_id is not None:
            resolvers[transfer.pending_id].append(transfer)
    for account in accounts:
        assert expected[account.id] == [
            account.debits_posted_micros,
            account.credits_posted_micros,
            account.debits_pending_micros,
            account.credits_pending_micros,
        ], f"{account.id}: totals differ from the sum of its transfers"
    for pending_id, resolving in resolvers.items():
        assert len(resolving) == 1, f"{pending_id} resolved {len(resolving)} times"
        pending = by_id.get(pending_id)
        if pending is not None:
            assert pending.resolution is not None and pending.resolution.resolving_transfer_id == resolving[0].id
            assert resolving[0].amount_micros <= pending.amount_micros
    for transfer in transfers:
        if transfer.resolution is not None and transfer.resolution.resolving_transfer_id is None:
            assert transfer.id not in resolvers, f"{transfer.id} expired and was resolved by a transfer too"
