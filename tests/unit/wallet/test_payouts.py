"""The payout gate's rule (W14), pure."""

import pytest

from adledger_wallet.domain.payouts import payout_allowed, payouts_ready


def test_w14_a_payout_goes_out_only_while_the_real_balance_covers_it() -> None:
    assert payout_allowed(100, 100)
    assert not payout_allowed(99, 100)
    assert not payout_allowed(-5, 1)


@pytest.mark.parametrize("amount", [0, -1, 1.5, True])
def test_w14_m1_a_payout_is_a_positive_integer_amount(amount: object) -> None:
    with pytest.raises(ValueError):
        payout_allowed(100, amount)  # type: ignore[arg-type]


def test_w14_outstanding_payouts_go_out_oldest_first_without_jumping_the_queue() -> None:
    assert payouts_ready(100, [60, 50, 10]) == 1
    assert payouts_ready(120, [60, 50, 10]) == 3
    assert payouts_ready(0, [1]) == 0
    assert payouts_ready(0, []) == 0
