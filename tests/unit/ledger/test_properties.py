"""Property tests of the ledger's rules over random sequences of operations (rules M1-M5).

They drive the in-memory fake, which stores exactly what the pure domain returns, so they
test the domain itself; tests/integration/ledger runs the same scenarios against PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adledger_ledger.domain import (
    Account,
    CurrencyMismatchError,
    TransferRequest,
    apply_transfers,
)
from adledger_ledger.fake import InMemoryLedger

from .scenario import ACCOUNTS, ScenarioRunner, Step, completed, scenarios

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scenarios)
def test_m3_m4_m5_any_sequence_of_operations_keeps_every_invariant(steps: list[Step]) -> None:
    """Sums are zero per currency (posted and pending), guarded accounts never go past their
    limit counting holds, totals equal the sum of stored transfers, a repeated key applies
    once and answers the first result, a hold resolves at most once, and a linked chain applies
    entirely or not at all. The checks are in `ScenarioRunner`, after every step."""
    completed(ScenarioRunner(InMemoryLedger()).run(steps))


@given(amount=st.floats(allow_nan=True, allow_infinity=True))
def test_m1_a_float_amount_is_refused_whatever_its_value(amount: float) -> None:
    with pytest.raises(TypeError, match="M1"):
        TransferRequest(
            id="t",
            debit_account_id="a",
            credit_account_id="b",
            amount_micros=amount,  # type: ignore[arg-type]
            currency="USD",
            code="spend",
        )


@given(amount=st.floats(allow_nan=False, allow_infinity=False))
def test_m1_a_float_in_user_data_or_an_account_total_is_refused(amount: float) -> None:
    with pytest.raises(TypeError, match="M1"):
        TransferRequest(
            id="t",
            debit_account_id="a",
            credit_account_id="b",
            amount_micros=1,
            currency="USD",
            code="spend",
            user_data={"cost": {"value": amount}},
        )
    with pytest.raises(TypeError, match="M1"):
        Account(id="a", currency="USD", code="cash", credits_posted_micros=amount)  # type: ignore[arg-type]


@given(
    debit_account=st.sampled_from(ACCOUNTS),
    credit_account=st.sampled_from(ACCOUNTS),
    currency=st.sampled_from(["USD", "EUR", "GBP"]),
    amount_micros=st.integers(1, 10**12),
    pending=st.booleans(),
)
def test_m2_any_transfer_mixing_currencies_is_refused_and_changes_nothing(
    debit_account: Account, credit_account: Account, currency: str, amount_micros: int, pending: bool
) -> None:
    if debit_account.id == credit_account.id:
        return
    accounts = {account.id: account for account in ACCOUNTS}
    request = TransferRequest(
        id="t",
        debit_account_id=debit_account.id,
        credit_account_id=credit_account.id,
        amount_micros=amount_micros,
        currency=currency,
        code="spend",
        pending=pending,
    )
    outcome = apply_transfers(accounts, {}, [request], NOW)
    mixed = len({debit_account.currency, credit_account.currency, currency}) > 1
    if mixed:
        assert isinstance(outcome.results[0].error, CurrencyMismatchError)
        assert outcome.changed_accounts == () and outcome.new_transfers == ()
    else:
        assert not isinstance(outcome.results[0].error, CurrencyMismatchError)


@given(amount_micros=st.integers(1, 10**15), repeats=st.integers(2, 5))
def test_m5_a_key_sent_many_times_applies_once_and_answers_the_first_result(amount_micros: int, repeats: int) -> None:
    ledger = InMemoryLedger()
    completed(ledger.create_accounts(None, ACCOUNTS))
    request = TransferRequest(
        id="top-up:1",
        debit_account_id="world:payments:usd",
        credit_account_id="bc:1:cash",
        amount_micros=amount_micros,
        currency="USD",
        code="top_up",
    )
    first = completed(ledger.create_transfers(None, [request], NOW))[0]
    later = NOW.replace(year=2031)
    for _ in range(repeats - 1):
        again = completed(ledger.create_transfers(None, [request], later))[0]
        assert again.replayed and again.transfer == first.transfer
    cash = completed(ledger.balances(None, ["bc:1:cash"]))["bc:1:cash"]
    assert cash.credits_posted_micros == amount_micros
