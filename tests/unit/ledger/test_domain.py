"""Examples of each ledger rule, on the pure domain (rules M1-M5)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adledger_ledger.domain import (
    Account,
    AmountExceedsPendingError,
    CurrencyMismatchError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidAccountError,
    InvalidTransferError,
    LinkedChainOpenError,
    LinkedTransferFailedError,
    PendingTransferAlreadyResolvedError,
    PendingTransferExpiredError,
    PendingTransferMismatchError,
    PendingTransferNotFoundError,
    ResolutionKind,
    SameAccountError,
    TransferKind,
    TransferRequest,
    TransferResult,
    UnknownAccountError,
    available,
    balance,
    open_accounts,
    raise_first_error,
)
from adledger_ledger.fake import InMemoryLedger

from .scenario import completed

NOW = datetime(2030, 1, 1, tzinfo=UTC)
WORLD = "world:payments:usd"
CASH = "bc:1:cash"
REVENUE = "platform:revenue:usd"
EURO_CASH = "bc:2:cash:eur"


def _ledger() -> InMemoryLedger:
    ledger = InMemoryLedger()
    completed(
        ledger.create_accounts(
            None,
            [
                Account(id=WORLD, currency="USD", code="world"),
                Account(id=CASH, currency="USD", code="cash", owner_id="bc:1", debits_must_not_exceed_credits=True),
                Account(id=REVENUE, currency="USD", code="revenue"),
                Account(id=EURO_CASH, currency="EUR", code="cash", debits_must_not_exceed_credits=True),
            ],
        )
    )
    return ledger


def _request(
    id: str, debit: str | None, credit: str | None, amount_micros: int | None, **fields: Any
) -> TransferRequest:
    return TransferRequest(
        id=id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount_micros=amount_micros,
        currency=fields.pop("currency", "USD"),
        code=fields.pop("code", "spend"),
        **fields,
    )


def _send(ledger: InMemoryLedger, requests: Sequence[TransferRequest], now: datetime = NOW) -> list[TransferResult]:
    return completed(ledger.create_transfers(None, requests, now))


def _account(ledger: InMemoryLedger, account_id: str) -> Account:
    return completed(ledger.balances(None, [account_id]))[account_id]


def _funded(amount_micros: int = 1_000) -> InMemoryLedger:
    ledger = _ledger()
    raise_first_error(_send(ledger, [_request("top-up", WORLD, CASH, amount_micros, code="top_up")]))
    return ledger


# -- M3: double entry ---------------------------------------------------------------------


def test_m3_a_transfer_debits_one_account_and_credits_the_other_by_the_same_amount() -> None:
    ledger = _funded(1_000)
    transfer = _send(ledger, [_request("spend", CASH, REVENUE, 300)])[0].unwrap()
    assert transfer.kind is TransferKind.SINGLE and transfer.created_at == NOW
    assert balance(_account(ledger, CASH)) == 700
    assert balance(_account(ledger, REVENUE)) == 300
    assert balance(_account(ledger, WORLD)) == -1_000


def test_m3_a_transfer_between_one_account_and_itself_is_refused_at_construction() -> None:
    with pytest.raises(SameAccountError):
        _request("self", CASH, CASH, 1)


def test_m3_an_unknown_account_is_named() -> None:
    result = _send(_ledger(), [_request("t", "nobody", CASH, 1)])[0]
    assert isinstance(result.error, UnknownAccountError) and result.error.account_id == "nobody"
    with pytest.raises(UnknownAccountError):
        result.unwrap()


def test_m3_a_guarded_account_cannot_go_negative_and_the_error_names_needed_and_available() -> None:
    ledger = _funded(1_000)
    result = _send(ledger, [_request("too-much", CASH, REVENUE, 1_001)])[0]
    error = result.error
    assert isinstance(error, InsufficientFundsError)
    assert (error.account_id, error.needed_micros, error.available_micros) == (CASH, 1_001, 1_000)
    assert balance(_account(ledger, CASH)) == 1_000


def test_m3_a_refused_request_in_a_batch_leaves_the_others_applied() -> None:
    ledger = _funded(1_000)
    requests = [_request("a", CASH, REVENUE, 400), _request("b", CASH, REVENUE, 700), _request("c", CASH, REVENUE, 600)]
    results = _send(ledger, requests)
    assert [result.ok for result in results] == [True, False, True]
    assert balance(_account(ledger, CASH)) == 0


def test_m3_accounts_open_idempotently_and_a_different_definition_conflicts() -> None:
    cash = Account(id=CASH, currency="USD", code="cash", debits_must_not_exceed_credits=True)
    assert open_accounts({CASH: cash}, [cash]).new_accounts == ()
    with pytest.raises(IdempotencyConflictError, match="debits_must_not_exceed_credits"):
        open_accounts({CASH: cash}, [Account(id=CASH, currency="USD", code="cash")])
    with pytest.raises(InvalidAccountError):
        open_accounts({}, [Account(id="rich", currency="USD", code="cash", credits_posted_micros=5)])
    with pytest.raises(InvalidAccountError):
        Account(
            id="both",
            currency="USD",
            code="x",
            debits_must_not_exceed_credits=True,
            credits_must_not_exceed_debits=True,
        )


def test_m3_credits_must_not_exceed_debits_guards_the_credited_account() -> None:
    ledger = _funded(1_000)
    credit_line = Account(id="credit_line", currency="USD", code="credit_line", credits_must_not_exceed_debits=True)
    completed(ledger.create_accounts(None, [credit_line]))
    raise_first_error(_send(ledger, [_request("draw", "credit_line", CASH, 500)]))
    result = _send(ledger, [_request("repay", CASH, "credit_line", 501)])[0]
    assert isinstance(result.error, InsufficientFundsError) and result.error.guard == "credits_must_not_exceed_debits"
    assert _send(ledger, [_request("repay-ok", CASH, "credit_line", 500)])[0].ok


# -- M1, M2 ---------------------------------------------------------------------------------


def test_m1_amounts_are_int_micros_and_never_bools_or_non_positive() -> None:
    with pytest.raises(TypeError, match="M1"):
        _request("t", WORLD, CASH, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="M1"):
        _request("t", WORLD, CASH, True)
    with pytest.raises(InvalidTransferError):
        _request("t", WORLD, CASH, 0)
    with pytest.raises(InvalidTransferError):
        _request("t", WORLD, CASH, -5)


def test_m2_a_transfer_in_another_currency_than_its_accounts_is_refused() -> None:
    ledger = _funded()
    result = _send(ledger, [_request("t", CASH, REVENUE, 1, currency="EUR")])[0]
    assert isinstance(result.error, CurrencyMismatchError)
    result = _send(ledger, [_request("t", CASH, EURO_CASH, 1)])[0]
    assert isinstance(result.error, CurrencyMismatchError)
    assert (result.error.expected, result.error.got) == ("EUR", "USD")


# -- M5: idempotency ----------------------------------------------------------------------


def test_m5_the_same_id_twice_applies_once_and_answers_the_first_result() -> None:
    ledger = _funded(1_000)
    request = _request("spend:1", CASH, REVENUE, 100)
    first = _send(ledger, [request])[0]
    second = _send(ledger, [request], NOW + timedelta(hours=1))[0]
    assert second.replayed and second.transfer == first.transfer
    assert second.transfer is not None and second.transfer.created_at == NOW
    assert balance(_account(ledger, CASH)) == 900


def test_m5_the_same_id_with_other_fields_is_a_conflict_naming_them() -> None:
    ledger = _funded(1_000)
    _send(ledger, [_request("spend:1", CASH, REVENUE, 100)])
    result = _send(ledger, [_request("spend:1", CASH, REVENUE, 101, user_data={"x": 1})])[0]
    assert isinstance(result.error, IdempotencyConflictError)
    assert result.error.differing_fields == ("amount_micros", "user_data")
    assert balance(_account(ledger, CASH)) == 900


def test_m5_a_refused_request_leaves_no_trace_so_its_id_can_be_tried_again() -> None:
    ledger = _funded(100)
    request = _request("spend:1", CASH, REVENUE, 150)
    assert not _send(ledger, [request])[0].ok
    _send(ledger, [_request("top-up:2", WORLD, CASH, 100)])
    again = _send(ledger, [request])[0]
    assert again.ok and not again.replayed


def test_m5_a_repeated_post_answers_the_first_post_even_after_the_hold_resolved() -> None:
    ledger = _funded(1_000)
    _send(ledger, [_request("hold", CASH, REVENUE, 500, pending=True)])
    post = _request("post", None, None, None, pending_id="hold", post_pending=True)
    first = _send(ledger, [post])[0].unwrap()
    again = _send(ledger, [post])[0]
    assert again.replayed and again.transfer == first and first.amount_micros == 500
    # Spelling out what the blanks meant is the same request.
    explicit = _request("post", CASH, REVENUE, 500, pending_id="hold", post_pending=True)
    assert _send(ledger, [explicit])[0].replayed


# -- M4: two-phase transfers ----------------------------------------------------------------


def test_m4_a_hold_counts_against_available_but_not_against_the_balance() -> None:
    ledger = _funded(1_000)
    hold = _send(ledger, [_request("hold", CASH, REVENUE, 600, pending=True, code="hold")])[0].unwrap()
    assert hold.kind is TransferKind.PENDING and hold.resolution is None
    cash = _account(ledger, CASH)
    assert (balance(cash), available(cash), cash.debits_pending_micros) == (1_000, 400, 600)
    refused = _send(ledger, [_request("spend", CASH, REVENUE, 401)])[0]
    assert isinstance(refused.error, InsufficientFundsError) and refused.error.available_micros == 400


def test_m4_a_partial_post_posts_part_and_releases_the_rest() -> None:
    ledger = _funded(1_000)
    _send(ledger, [_request("hold", CASH, REVENUE, 600, pending=True)])
    post = _send(ledger, [_request("post", None, None, 250, pending_id="hold", post_pending=True)])[0].unwrap()
    assert (post.debit_account_id, post.credit_account_id, post.amount_micros) == (CASH, REVENUE, 250)
    cash = _account(ledger, CASH)
    assert (balance(cash), available(cash), cash.debits_pending_micros) == (750, 750, 0)
    hold = completed(ledger.lookup_transfers(None, ["hold"]))["hold"]
    assert hold.resolution is not None
    assert (hold.resolution.kind, hold.resolution.resolving_transfer_id) == (ResolutionKind.POSTED, "post")


def test_m4_a_void_releases_the_whole_hold() -> None:
    ledger = _funded(1_000)
    _send(ledger, [_request("hold", CASH, REVENUE, 600, pending=True)])
    void = _send(ledger, [_request("void", None, None, None, pending_id="hold", void_pending=True)])[0].unwrap()
    assert void.amount_micros == 600
    cash = _account(ledger, CASH)
    assert (balance(cash), available(cash)) == (1_000, 1_000)
    partial_void = _request("void-2", None, None, 100, pending_id="hold-2", void_pending=True)
    _send(ledger, [_request("hold-2", CASH, REVENUE, 600, pending=True)])
    assert isinstance(_send(ledger, [partial_void])[0].error, InvalidTransferError)


def test_m4_a_hold_resolves_at_most_once() -> None:
    ledger = _funded(1_000)
    _send(ledger, [_request("hold", CASH, REVENUE, 600, pending=True)])
    _send(ledger, [_request("post", None, None, None, pending_id="hold", post_pending=True)])
    for second in (
        _request("post-2", None, None, None, pending_id="hold", post_pending=True),
        _request("void", None, None, None, pending_id="hold", void_pending=True),
    ):
        error = _send(ledger, [second])[0].error
        assert isinstance(error, PendingTransferAlreadyResolvedError)
        assert error.resolution.kind is ResolutionKind.POSTED
    assert completed(ledger.expire_pending(None, NOW + timedelta(days=365))) == []
    assert balance(_account(ledger, CASH)) == 400


def test_m4_post_errors_unknown_not_pending_too_much_other_accounts_other_currency() -> None:
    ledger = _funded(1_000)
    _send(ledger, [_request("hold", CASH, REVENUE, 600, pending=True), _request("plain", CASH, REVENUE, 1)])
    cases: list[tuple[TransferRequest, type[Exception]]] = [
        (_request("p1", None, None, None, pending_id="missing", post_pending=True), PendingTransferNotFoundError),
        (_request("p2", None, None, None, pending_id="plain", post_pending=True), PendingTransferNotFoundError),
        (_request("p3", None, None, 601, pending_id="hold", post_pending=True), AmountExceedsPendingError),
        (_request("p4", WORLD, None, None, pending_id="hold", post_pending=True), PendingTransferMismatchError),
        (_request("p5", None, None, None, pending_id="hold", post_pending=True, currency="EUR"), CurrencyMismatchError),
    ]
    for request, error_type in cases:
        assert isinstance(_send(ledger, [request])[0].error, error_type), request.id
    assert available(_account(ledger, CASH)) == 399


def test_m4_an_expired_hold_cannot_be_posted_and_the_sweep_releases_it_once() -> None:
    ledger = _funded(1_000)
    expires_at = NOW + timedelta(hours=48)
    _send(ledger, [_request("hold", CASH, REVENUE, 600, pending=True, expires_at=expires_at)])
    assert completed(ledger.expire_pending(None, expires_at - timedelta(microseconds=1))) == []
    late = _send(ledger, [_request("post", None, None, None, pending_id="hold", post_pending=True)], expires_at)[0]
    assert isinstance(late.error, PendingTransferExpiredError)
    expired = completed(ledger.expire_pending(None, expires_at))
    assert [transfer.id for transfer in expired] == ["hold"]
    assert expired[0].resolution is not None and expired[0].resolution.kind is ResolutionKind.EXPIRED
    assert completed(ledger.expire_pending(None, expires_at + timedelta(days=1))) == []
    assert available(_account(ledger, CASH)) == 1_000
    after = _send(ledger, [_request("void", None, None, None, pending_id="hold", void_pending=True)])[0]
    assert isinstance(after.error, PendingTransferAlreadyResolvedError)


def test_m4_expiry_and_post_fields_are_validated_at_construction() -> None:
    with pytest.raises(InvalidTransferError):
        _request("t", CASH, REVENUE, 1, expires_at=NOW)  # Only a hold expires.
    with pytest.raises(InvalidTransferError):
        _request("t", CASH, REVENUE, 1, pending=True, expires_at=datetime(2030, 1, 1))  # Naive time.
    with pytest.raises(InvalidTransferError):
        _request("t", None, None, None, post_pending=True)  # No pending_id.
    with pytest.raises(InvalidTransferError):
        _request("t", CASH, REVENUE, 1, pending=True, post_pending=True)
    result = _send(_funded(), [_request("t", CASH, REVENUE, 1, pending=True, expires_at=NOW)])[0]
    assert isinstance(result.error, InvalidTransferError)


def test_m4_a_hold_created_and_posted_in_one_batch() -> None:
    ledger = _funded(1_000)
    results = _send(
        ledger,
        [
            _request("hold", CASH, REVENUE, 600, pending=True, expires_at=NOW + timedelta(hours=1)),
            _request("post", None, None, 100, pending_id="hold", post_pending=True),
        ],
    )
    assert all(result.ok for result in results)
    assert available(_account(ledger, CASH)) == 900


# -- Linked chains --------------------------------------------------------------------------


def test_m3_a_linked_chain_applies_entirely() -> None:
    ledger = _funded(1_000)
    results = _send(
        ledger,
        [
            _request("move-out", CASH, WORLD, 300, linked=True, code="aba_move"),
            _request("move-in", WORLD, CASH, 300, code="aba_move"),
        ],
    )
    assert all(result.ok for result in results)
    assert balance(_account(ledger, CASH)) == 1_000


def test_m3_a_linked_chain_with_a_failing_member_applies_nothing_and_names_it() -> None:
    ledger = _funded(1_000)
    results = _send(
        ledger,
        [
            _request("first", CASH, REVENUE, 300, linked=True),
            _request("hold", CASH, REVENUE, 300, linked=True, pending=True),
            _request("post", None, None, None, pending_id="hold", post_pending=True, linked=True),
            _request("too-much", CASH, REVENUE, 500, linked=True),
            _request("last", CASH, REVENUE, 1),
            _request("independent", CASH, REVENUE, 10),
        ],
    )
    assert isinstance(results[3].error, InsufficientFundsError)
    for index in (0, 1, 2, 4):
        error = results[index].error
        assert isinstance(error, LinkedTransferFailedError) and error.failing_request_id == "too-much"
    assert results[5].ok
    assert balance(_account(ledger, CASH)) == 990
    assert completed(ledger.lookup_transfers(None, ["first", "hold", "post", "last"])) == {}


def test_m3_a_chain_left_open_at_the_end_of_a_batch_applies_nothing() -> None:
    ledger = _funded(1_000)
    results = _send(ledger, [_request("a", CASH, REVENUE, 1), _request("b", CASH, REVENUE, 1, linked=True)])
    assert results[0].ok and isinstance(results[1].error, LinkedChainOpenError)


def test_the_clock_must_be_utc() -> None:
    with pytest.raises(ValueError, match="UTC"):
        _send(_funded(), [_request("a", CASH, REVENUE, 1)], datetime(2030, 1, 1))
