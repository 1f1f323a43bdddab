"""Other services' commands to the wallet over `wallet.commands.v1`: holds (M4) and payouts (W14)."""

from __future__ import annotations

import asyncio
import json

import pytest

from adledger_contracts.wallet import PlaceHold, RequestPayout, ResolveHold
from adledger_libs.events import Message

from ..conftest import unique
from ..kafka_io import encoded, produce, read_all
from .test_wallet_journey import PLATFORM, USD, RunningWallet, wallet  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


async def _send(running: RunningWallet, key: str, *commands: Message) -> None:
    items = [encoded(command, key, topic=running.commands_topic, trace_id="trace-command") for command in commands]
    await produce(running.bootstrap, running.commands_topic, items)


async def _answers(running: RunningWallet, key: str, count: int) -> list[tuple[str, dict[str, object]]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        records = await read_all(running.bootstrap, running.events_topic, expect=0, settle_s=0.2)
        mine = [
            (record.headers["event-type"], json.loads(record.value or b"{}"))
            for record in records
            if record.key == key.encode() and record.headers["event-type"] in {"HoldPlaced", "HoldRejected", "HoldResolved", "PayoutSettled"}
        ]
        if len(mine) >= count:
            return mine
        assert loop.time() < deadline, f"got {mine}"
        await asyncio.sleep(0.2)


async def test_m4_w14_holds_and_payouts_commanded_over_kafka(wallet: RunningWallet) -> None:  # noqa: F811
    admin, token = await wallet.user("admin")
    buyer, seller = unique("bc"), unique("bc")
    for business_center in (buyer, seller):
        answer = await wallet.open_business_center(business_center, admin)
        assert answer.status_code == 201
    await wallet.pay(unique("inv"), buyer, 10 * USD)
    await wallet.balance_until(buyer, token, "real_micros", 10 * USD)

    escrow, booking = unique("hold"), unique("hold")
    await _send(
        wallet,
        buyer,
        PlaceHold(idempotency_key=escrow, hold_id=escrow, owner_id=buyer, amount_micros=4 * USD, currency="USD", purpose="order_escrow", requested_by="order_escrow"),
        PlaceHold(idempotency_key=booking, hold_id=booking, owner_id=buyer, amount_micros=20 * USD, currency="USD", purpose="campaign_booking", allow_partial=True, requested_by="campaign"),
        PlaceHold(idempotency_key="too-much", hold_id=unique("hold"), owner_id=buyer, amount_micros=USD, currency="USD", purpose="order_escrow", requested_by="order_escrow"),
    )
    answers = await _answers(wallet, buyer, 3)
    assert answers[0] == ("HoldPlaced", answers[0][1]) and answers[0][1]["held_micros"] == 4 * USD
    assert answers[1][0] == "HoldPlaced" and answers[1][1]["held_micros"] == 6 * USD, "C1: the covered part is held"
    assert answers[2][0] == "HoldRejected" and answers[2][1]["error"] == "insufficient_funds"
    balance = await wallet.balance_until(buyer, token, "virtual_micros", 0)
    assert balance["real_micros"] == 10 * USD, "W11: holds lower the virtual balance, not the real one"

    resolve = ResolveHold(idempotency_key=unique("k"), hold_id=booking, action="post", amount_micros=2 * USD, requested_by="campaign")
    await _send(wallet, buyer, resolve, resolve, ResolveHold(idempotency_key=unique("k"), hold_id=escrow, action="void", requested_by="order_escrow"))
    answers = await _answers(wallet, buyer, 6)
    # M5: the repeated command is answered again with the first result, and applied once (below).
    assert [kind for kind, _ in answers[3:]] == ["HoldResolved"] * 3
    assert answers[3][1]["posted_micros"] == answers[4][1]["posted_micros"] == 2 * USD
    await wallet.balance_until(buyer, token, "real_micros", 8 * USD)
    assert (await wallet.get(f"/v1/balances/{buyer}", token)).json()["virtual_micros"] == 8 * USD

    # W14: a payout larger than the real balance waits, and goes out by itself when money arrives.
    payout = unique("payout")
    await _send(wallet, buyer, RequestPayout(idempotency_key=payout, payout_id=payout, payer_owner_id=buyer, payee_owner_id=seller, amount_micros=9 * USD, currency="USD", requested_by="order_escrow"))
    answers = await _answers(wallet, buyer, 7)
    assert answers[6] == ("PayoutSettled", {**answers[6][1], "status": "outstanding"})
    await wallet.pay(unique("inv"), buyer, 5 * USD)
    await wallet.balance_until(seller, token, "real_micros", 9 * USD)
    answers = await _answers(wallet, buyer, 8)
    assert answers[7][0] == "PayoutSettled" and answers[7][1]["status"] == "paid"
    assert (await wallet.get(f"/v1/balances/{buyer}", token)).json()["real_micros"] == 4 * USD


async def test_m4_t1_a_hold_past_its_deadline_is_released_once(wallet: RunningWallet) -> None:  # noqa: F811
    from datetime import timedelta

    from adledger_ledger.postgres import PostgresLedger
    from adledger_wallet.adapters.postgres import PostgresWalletStore
    from adledger_libs.outbox import unit_of_work
    from adledger_wallet.core import Wallet

    admin, token = await wallet.user("admin")
    buyer = unique("bc")
    await wallet.open_business_center(buyer, admin)
    await wallet.pay(unique("inv"), buyer, 5 * USD)
    await wallet.balance_until(buyer, token, "real_micros", 5 * USD)
    hold = unique("hold")
    expires_at = wallet.clock.now() + timedelta(hours=48)
    await _send(wallet, buyer, PlaceHold(idempotency_key=hold, hold_id=hold, owner_id=buyer, amount_micros=2 * USD, currency="USD", purpose="order_escrow", expires_at=expires_at, requested_by="order_escrow"))
    await wallet.balance_until(buyer, token, "virtual_micros", 3 * USD)

    sweeper = Wallet(PostgresLedger(wallet.runtime.settings.ledger_schema), wallet.clock, PostgresWalletStore.of)  # type: ignore[attr-defined]
    async with unit_of_work(wallet.runtime.pool) as uow:
        assert await sweeper.expire_holds(uow) == [], "not yet due"
    wallet.clock.advance(timedelta(hours=48))
    async with unit_of_work(wallet.runtime.pool) as uow:
        assert await sweeper.expire_holds(uow) == [f"hold:{hold}"]
    async with unit_of_work(wallet.runtime.pool) as uow:
        assert await sweeper.expire_holds(uow) == [], "a hold expires at most once"
    balance = (await wallet.get(f"/v1/balances/{buyer}", token)).json()
    assert (balance["real_micros"], balance["virtual_micros"]) == (5 * USD, 5 * USD)


async def test_m4_an_escrow_hold_with_a_payee_posts_to_the_seller_and_a_partial_post_splits(wallet: RunningWallet) -> None:  # noqa: F811
    admin, token = await wallet.user("admin")
    buyer, seller = unique("bc"), unique("bc")
    for business_center in (buyer, seller):
        await wallet.open_business_center(business_center, admin)
    await wallet.pay(unique("inv"), buyer, 10 * USD)
    await wallet.balance_until(buyer, token, "real_micros", 10 * USD)
    order = unique("order")
    await _send(wallet, buyer, PlaceHold(idempotency_key=order, hold_id=order, owner_id=buyer, payee_owner_id=seller, amount_micros=6 * USD, currency="USD", purpose="order_escrow", requested_by="order_escrow"))
    await wallet.balance_until(buyer, token, "virtual_micros", 4 * USD)
    # An admin's split: 4 USD to the seller, the other 2 back to the buyer.
    await _send(wallet, buyer, ResolveHold(idempotency_key=unique("k"), hold_id=order, action="post", amount_micros=4 * USD, requested_by="order_escrow"))
    await wallet.balance_until(seller, token, "real_micros", 4 * USD)
    balance = await wallet.balance_until(buyer, token, "real_micros", 6 * USD)
    assert balance["virtual_micros"] == 6 * USD


async def test_m4_commands_are_applied_in_the_order_they_were_sent_whatever_their_type(wallet: RunningWallet) -> None:  # noqa: F811
    """A void that frees the money, then a hold that needs it, sent together: the hold is placed.
    (The wallet used to apply a batch's commands by type, every PlaceHold first, which refused it.)"""
    admin, token = await wallet.user("admin")
    buyer = unique("bc")
    await wallet.open_business_center(buyer, admin)
    await wallet.pay(unique("inv"), buyer, 10 * USD)
    await wallet.balance_until(buyer, token, "real_micros", 10 * USD)
    first, second = unique("hold"), unique("hold")
    await _send(wallet, buyer, PlaceHold(idempotency_key=first, hold_id=first, owner_id=buyer, amount_micros=10 * USD, currency="USD", purpose="order_escrow", requested_by="order_escrow"))
    await wallet.balance_until(buyer, token, "virtual_micros", 0)
    await _send(
        wallet, buyer,
        ResolveHold(idempotency_key=unique("k"), hold_id=first, action="void", requested_by="order_escrow"),
        PlaceHold(idempotency_key=second, hold_id=second, owner_id=buyer, amount_micros=10 * USD, currency="USD", purpose="order_escrow", requested_by="order_escrow"),
    )
    answers = await _answers(wallet, buyer, 3)
    assert [kind for kind, _ in answers] == ["HoldPlaced", "HoldResolved", "HoldPlaced"], answers
    assert answers[2][1]["hold_id"] == second and answers[2][1]["held_micros"] == 10 * USD


@pytest.fixture
def signers_known_at_start() -> None:
    """The keys the test signs with exist before the wallet starts (on a fresh machine they do not
    yet): the wallet then knows each signer, so what it refuses is who signed, not an unknown key."""
    from adledger_auth.signatures import service_key
    from adledger_libs.settings import ServiceSettings

    for principal in ("spend_consumer", "order_escrow", "campaign"):
        service_key(ServiceSettings(profile="local").secrets_path() / "services", principal, make=True)


async def test_m3_i1_commands_and_payments_not_signed_by_a_service_that_may_send_them_move_no_money(
    signers_known_at_start: None, wallet: RunningWallet  # noqa: F811 - the fixture, made after the keys
) -> None:
    """Issue 12: the wallet's commands and paid invoices are checked against who may send them, not
    trusted because they came over Kafka. Unsigned, signed by another service, or claiming another
    requester: each is dead-lettered with its reason, and no money moves."""
    from adledger_auth.signatures import HEADER_SIGNATURE, service_key
    from adledger_contracts.wallet import InvoicePaid
    from adledger_libs.events import encode
    from adledger_libs.settings import ServiceSettings

    admin, token = await wallet.user("admin")
    buyer = unique("bc")
    await wallet.open_business_center(buyer, admin)
    await wallet.pay(unique("inv"), buyer, 10 * USD)
    await wallet.balance_until(buyer, token, "real_micros", 10 * USD)

    def record(message: Message, topic: str, principal: str | None) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        envelope = encode(message, key=buyer, trace_id="forged")
        headers = list(envelope.headers)
        if principal is not None:
            signer = service_key(ServiceSettings().secrets_path() / "services", principal, make=True)
            headers.append((HEADER_SIGNATURE, signer.sign(topic, envelope.key, envelope.value).encode()))
        return envelope.key, envelope.value, headers

    def hold(requested_by: str) -> PlaceHold:
        hold_id = unique("hold")
        return PlaceHold(idempotency_key=hold_id, hold_id=hold_id, owner_id=buyer, amount_micros=4 * USD, currency="USD",
                         purpose="order_escrow", requested_by=requested_by)

    await produce(wallet.bootstrap, wallet.commands_topic, [
        record(hold("order_escrow"), wallet.commands_topic, None),  # unsigned
        record(hold("order_escrow"), wallet.commands_topic, "spend_consumer"),  # a service that may not ask
        record(hold("campaign"), wallet.commands_topic, "order_escrow"),  # claims another requester
        record(hold("order_escrow"), "another.topic", "order_escrow"),  # signed for another topic
    ])
    minted = InvoicePaid(invoice_id=unique("inv"), owner_id=buyer, amount_micros=1_000 * USD, currency="USD", paid_at=wallet.clock.now())
    await produce(wallet.bootstrap, "invoicing.events.v1", [record(minted, "invoicing.events.v1", "campaign")])
    # The stream goes on: a properly signed hold after them is placed.
    await _send(wallet, buyer, hold("order_escrow"))
    await wallet.balance_until(buyer, token, "virtual_micros", 6 * USD)
    balance = (await wallet.get(f"/v1/balances/{buyer}", token)).json()
    assert balance["real_micros"] == 10 * USD, "no forged payment was credited"
    group = wallet.runtime.settings.consumer_group

    async def reasons() -> list[str]:
        found = []
        for dlq in (wallet.commands_topic + ".dlq", "invoicing.events.v1.dlq"):
            records = await read_all(wallet.bootstrap, dlq, expect=0, settle_s=0.2)
            found += [r.headers["dlq-reason"] for r in records if r.key == buyer.encode() and r.headers["dlq-consumer-group"] == group]
        return found

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(found := await reasons()) < 5 and loop.time() < deadline:
        await asyncio.sleep(0.2)
    assert len(found) == 5, found
    assert any("unsigned" in reason for reason in found)
    assert any("spend_consumer may not send PlaceHold" in reason for reason in found), found
    assert any("requested by campaign" in reason for reason in found)
    assert any("for another record" in reason for reason in found)
    assert any("campaign may not send InvoicePaid" in reason for reason in found)
