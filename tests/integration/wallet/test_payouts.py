"""The payout gate (W14) in the wallet: a payout waits while the payer's real balance is short, the
queue is never jumped, and everything outstanding goes out once, by itself, when money arrives."""

from __future__ import annotations

import pytest

from adledger_contracts.wallet import RequestPayout

from ..conftest import unique
from .test_wallet_commands import _answers, _send
from .test_wallet_journey import USD, RunningWallet, wallet  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


async def test_w14_a_payout_waits_while_the_real_balance_is_short_and_goes_out_once_when_funds_arrive(
    wallet: RunningWallet,  # noqa: F811
) -> None:
    admin, token = await wallet.user("admin")
    payer, seller = unique("bc"), unique("bc")
    for business_center in (payer, seller):
        assert (await wallet.open_business_center(business_center, admin)).status_code == 201
    await wallet.pay(unique("inv"), payer, 5 * USD)
    await wallet.balance_until(payer, token, "real_micros", 5 * USD)

    def payout(payout_id: str, amount_micros: int) -> RequestPayout:
        return RequestPayout(idempotency_key=payout_id, payout_id=payout_id, payer_owner_id=payer, payee_owner_id=seller,
                             amount_micros=amount_micros, currency="USD", requested_by="order_escrow")

    big, small = unique("commission"), unique("commission")
    await _send(wallet, payer, payout(big, 8 * USD))
    await _send(wallet, payer, payout(small, 1 * USD))
    answers = await _answers(wallet, payer, 2)
    assert [answer[1]["status"] for answer in answers] == ["outstanding", "outstanding"], "the small one does not jump the queue"
    assert (await wallet.get(f"/v1/balances/{payer}", token)).json()["real_micros"] == 5 * USD

    await wallet.pay(unique("inv"), payer, 10 * USD)
    await wallet.balance_until(seller, token, "real_micros", 9 * USD)
    answers = await _answers(wallet, payer, 4)
    assert sorted(answer[1]["payout_id"] for answer in answers[2:]) == sorted([big, small])
    assert {answer[1]["status"] for answer in answers[2:]} == {"paid"}
    # A repeated request is answered, not paid again.
    await _send(wallet, payer, payout(big, 8 * USD))
    answers = await _answers(wallet, payer, 5)
    assert answers[4][1]["status"] == "paid"
    assert (await wallet.balance_until(payer, token, "real_micros", 6 * USD))["real_micros"] == 6 * USD
    assert (await wallet.get(f"/v1/balances/{seller}", token)).json()["real_micros"] == 9 * USD
