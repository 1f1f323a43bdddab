"""The spend consumer on the real stack, with the wallet in-process beside it: spend taken once
in W7 order, pauses at the exact event that reached zero, overspend covered by the next money
in and delivery resumed, final-cost adjustments, dead letters."""

from __future__ import annotations

import json

import pytest

from .conftest import USD, Services, values

pytestmark = pytest.mark.integration


async def test_w8_s1_s2_s4_manual_account_pauses_once_at_zero_overspends_and_resumes_when_an_invoice_is_paid(services: Services) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 10 * USD)
    await services.balance_until(account, "available_micros", 10 * USD)

    first, second, crossing, after = (services.spend_event(account, amount) for amount in (4 * USD, 4 * USD, 2 * USD, 1 * USD))
    # S1: `second` is sent twice (an ad server re-sending it with the same event id); it is taken once.
    await services.send_spends([first, second, second, crossing, after])

    # S2: the spend after zero drives the real balance negative; it is recorded as overspend.
    spent = await services.balance_until(account, "real_micros", -1 * USD)
    assert spent["available_micros"] == -1 * USD
    pauses = await services.pauses_until(account, lambda rows: len(rows) == 1 and rows[0]["overspend_micros"] == 1 * USD)
    # W8: the pause names exactly the event at which the funds reached zero, even inside a batch.
    assert pauses[0]["cause_event_id"] == crossing.event_id and pauses[0]["resumed_at"] is None

    # S2: the next paid invoice covers the overspend first; the funds are back, delivery resumes (W8).
    await services.pay(account, 5 * USD)
    await services.balance_until(account, "available_micros", 4 * USD)
    await services.pauses_until(account, lambda rows: rows[0]["resumed_at"] is not None)

    # S1: events re-sent long after they were applied are dropped; a new one behind them on the
    # same partition shows they were read.
    await services.send_spends([first, crossing, services.spend_event(account, 1 * USD)])
    await services.balance_until(account, "available_micros", 3 * USD)
    assert len(await services.pauses_until(account, lambda rows: True)) == 1

    # S4: one pause and one resume on delivery.control.v1, and the latest state on delivery.state.v1.
    decisions = values(await services.records_for("delivery.control.v1", {account}, expect=2))
    assert [(item["action"], item["reason"]) for item in decisions] == [("pause", "insufficient_funds"), ("resume", "funds_restored")]
    assert decisions[0]["cause_event_id"] == crossing.event_id and decisions[0]["campaign_id"] is None
    assert decisions[1]["overspend_micros"] == 1 * USD, "the resume carries the overspend of the pause it ends"
    states = values(await services.records_for("delivery.state.v1", {account}, expect=2))
    assert [item["serving"] for item in states] == [False, True]


async def test_w7_w8_aba_business_center_at_zero_pauses_every_aba_account(services: Services) -> None:
    business_center = await services.business_center()
    first, second = await services.ad_account(business_center, aba_eligible=True), await services.ad_account(business_center, aba_eligible=True)
    await services.command("POST", f"/v1/business-centers/{business_center}/aba", services.admin_token)
    await services.known_to_spend_consumer(first, aba=True)
    await services.known_to_spend_consumer(second, aba=True)
    await services.pay(business_center, 5 * USD)
    await services.balance_until(business_center, "available_micros", 5 * USD)

    await services.send_spends([services.spend_event(first, 3 * USD)])
    await services.balance_until(business_center, "available_micros", 2 * USD)
    assert (await services.fetch(f"select * from {services.spend_schema}.pauses")) == []
    # Another ABA account of the same Business Center takes the shared funds to zero: both pause.
    crossing = services.spend_event(second, 2 * USD)
    await services.send_spends([crossing])
    await services.balance_until(business_center, "available_micros", 0)
    for account in (first, second):
        pauses = await services.pauses_until(account, lambda rows: len(rows) == 1)
        assert pauses[0]["cause_event_id"] == crossing.event_id
    decisions = values(await services.records_for("delivery.control.v1", {first, second}, expect=2))
    assert sorted(item["ad_account_id"] for item in decisions) == sorted([first, second])
    assert {(item["action"], item["business_center_id"], item["cause_event_id"]) for item in decisions} == {("pause", business_center, crossing.event_id)}

    # W8: money into the Business Center resumes every ABA account that was paused for it.
    await services.pay(business_center, 3 * USD)
    for account in (first, second):
        await services.pauses_until(account, lambda rows: rows[0]["resumed_at"] is not None)
    decisions = values(await services.records_for("delivery.control.v1", {first, second}, expect=4))
    assert sorted((item["ad_account_id"], item["action"]) for item in decisions if item["action"] == "resume") == sorted(
        [(first, "resume"), (second, "resume")]
    )


async def test_s6_a_final_cost_takes_only_the_difference_and_a_lower_one_gives_it_back(services: Services) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 10 * USD)
    await services.balance_until(account, "available_micros", 10 * USD)

    await services.send_spends([services.spend_event(account, 3 * USD, charge_id="charge-1")])
    await services.balance_until(account, "available_micros", 7 * USD)
    await services.send_spends([services.spend_event(account, 5 * USD, charge_id="charge-1")])
    await services.balance_until(account, "available_micros", 5 * USD)
    # A lower final cost gives the difference back to the bucket it was taken from.
    await services.send_spends([services.spend_event(account, 2 * USD, charge_id="charge-1")])
    back = await services.balance_until(account, "available_micros", 8 * USD)
    assert back["real_micros"] == 8 * USD


async def test_s5_wrong_currency_unknown_account_and_malformed_spend_go_to_the_dead_letter_topic_and_change_nothing(services: Services) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 10 * USD)
    await services.balance_until(account, "available_micros", 10 * USD)

    stranger = f"{account}-unknown"
    await services.send_spends([services.spend_event(account, 4 * USD, currency="EUR"), services.spend_event(stranger, 4 * USD)])
    await services.send_raw(account, b'{"event_id": "broken", "amount_micros": 1.5}')
    # The stream goes on: a good spend after them is taken.
    await services.send_spends([services.spend_event(account, 1 * USD)])
    await services.balance_until(account, "available_micros", 9 * USD)

    dead = await services.records_for(f"{services.spend_topic}.dlq", {account, stranger}, expect=3)
    reasons = sorted(record.headers["dlq-reason"] for record in dead)
    assert len(dead) == 3, reasons
    assert any("currency mismatch" in reason for reason in reasons)
    assert any("unknown ad account" in reason for reason in reasons)
    assert any("invalid SpendReported" in reason for reason in reasons)
    assert (await services.balance(account))["available_micros"] == 9 * USD


async def test_s5_poison_spend_2_to_the_63_a_nul_byte_and_an_overflowing_batch_are_dead_lettered_while_spend_keeps_flowing(
    services: Services,
) -> None:
    """Issue 12's poison record: `amount_micros` = 2^63 (a valid JSON integer) used to reach the
    ledger, raise, and stop the spend consumer at every start. Its class: a NUL byte in an id, and
    amounts that each fit but whose sum in one batch passes what the ledger can hold."""
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 10 * USD)
    await services.balance_until(account, "available_micros", 10 * USD)

    good = services.spend_event(account, 1 * USD)
    poison = good.model_dump(mode="json") | {"event_id": "poison-2-63", "amount_micros": 2**63}
    nul = good.model_dump(mode="json") | {"event_id": "poison-nul", "campaign_id": "camp\u0000aign"}
    await services.send_raw(account, json.dumps(poison).encode())
    await services.send_raw(account, json.dumps(nul).encode())
    # Two spends that each fit in a bigint; together they pass 2^63 - 1 on the account's overspend.
    half = 2**62 + 1
    await services.send_spends([services.spend_event(account, half), services.spend_event(account, half), good])
    await services.balance_until(account, "available_micros", 9 * USD - half)

    dead = await services.records_for(f"{services.spend_topic}.dlq", {account}, expect=3)
    reasons = [record.headers["dlq-reason"] for record in dead]
    assert len(dead) == 3, reasons
    assert any("amount_micros" in reason and "invalid SpendReported" in reason for reason in reasons), reasons
    assert any("campaign_id" in reason for reason in reasons), reasons
    assert any("overflow" in reason or "between 0 and" in reason for reason in reasons), reasons
    # The stream goes on after them: a new spend is still taken.
    await services.send_spends([services.spend_event(account, 1 * USD)])
    await services.balance_until(account, "available_micros", 8 * USD - half)
