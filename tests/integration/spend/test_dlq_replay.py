"""An operator's replay of dead-lettered spend with the `adledger` command line (S5, S1, M5),
against the real spend consumer and wallet: a spend event for an account that does not exist
yet is dead-lettered; once the account is opened, `adledger dlq replay` charges it exactly once;
replaying it again, or replaying one that the ad server had re-sent meanwhile, charges nothing
more (the event-id dedupe: a dead-lettered record is not counted as applied, an applied one is)."""

from __future__ import annotations

import json

import pytest

from ..cli_process import adledger
from ..conftest import unique
from ..kafka_io import end_offsets, read_all
from ..waits import until
from .conftest import USD, Services

pytestmark = pytest.mark.integration


async def _applied_through(services: Services, partition: int, offset: int) -> None:
    """Until the spend consumer's stored position on the spend topic's partition is past `offset`."""

    async def check() -> bool:
        row = await services.fetchrow(
            f"select next_offset from {services.spend_schema}.consumer_positions where topic = $1 and partition = $2",
            services.spend_topic,
            partition,
        )
        return row is not None and row["next_offset"] > offset

    await until(check, f"the spend consumer to apply {services.spend_topic}:{partition}:{offset}")


async def _records_on_spend_topic(services: Services) -> int:
    return sum((await end_offsets(services.bootstrap, [services.spend_topic])).values())


async def _dead_lettered(services: Services, account_id: str) -> None:
    await services.records_for(f"{services.spend_topic}.dlq", {account_id}, expect=1)


async def test_s5_a_dead_lettered_spend_replayed_after_its_account_opens_is_charged_once_and_a_second_replay_nothing(
    services: Services,
) -> None:
    business_center = await services.business_center()
    # An ad server serves an account the platform does not know yet: the spend is dead-lettered.
    late_account = unique("acc")
    spend = services.spend_event(late_account, 4 * USD)
    await services.send_spends([spend])
    await _dead_lettered(services, late_account)

    shown = await adledger("dlq", "show", services.spend_topic, "--reason", late_account, "--json")
    assert shown.returncode == 0, shown
    assert shown.json()["matched"] == 1
    letter = shown.json()["shown"][0]
    assert letter["reason"] == f"unknown ad account {late_account}"
    assert letter["origin"].startswith(f"{services.spend_topic}:")
    assert letter["key"] == late_account and json.loads(letter["value"])["event_id"] == spend.event_id

    # A dry run names what it would send and sends nothing.
    before = await _records_on_spend_topic(services)
    dry = await adledger("dlq", "replay", services.spend_topic, "--reason", late_account, "--dry-run", "--json")
    assert dry.returncode == 0, dry
    assert [item["outcome"] for item in dry.json()["replays"]] == ["would publish"]
    assert await _records_on_spend_topic(services) == before

    # The cause is fixed: the account is opened and funded. Then the operator replays it.
    await services.ad_account(business_center, account_id=late_account)
    await services.known_to_spend_consumer(late_account)
    await services.pay(late_account, 10 * USD)
    await services.balance_until(late_account, "available_micros", 10 * USD)
    first = await adledger("dlq", "replay", services.spend_topic, "--reason", late_account, "--json")
    assert first.returncode == 0, first
    [published] = first.json()["replays"]
    assert published["outcome"] == "published" and published["destination_topic"] == services.spend_topic
    await services.balance_until(late_account, "available_micros", 6 * USD)

    # The replayed record is the original (key, value) with the dlq-* headers gone and its source named.
    replayed = [
        record
        for record in await read_all(services.bootstrap, services.spend_topic, expect=0, settle_s=0.2)
        if (record.partition, record.offset) == (published["destination_partition"], published["published_offset"])
    ]
    assert len(replayed) == 1
    assert (
        replayed[0].key == late_account.encode() and json.loads(replayed[0].value or b"")["event_id"] == spend.event_id
    )
    assert replayed[0].headers == {"dlq-replayed-from": letter["dlq"]}

    # Replayed again by mistake: published, read by the consumer, and charged nothing.
    second = await adledger("dlq", "replay", services.spend_topic, "--reason", late_account, "--json")
    assert second.returncode == 0, second
    [again] = second.json()["replays"]
    assert again["outcome"] == "published" and again["published_offset"] > published["published_offset"]
    await _applied_through(services, again["destination_partition"], again["published_offset"])
    balance = await services.balance(late_account)
    assert (balance["available_micros"], balance["real_micros"]) == (6 * USD, 6 * USD)


async def test_s1_a_dead_letter_replayed_after_the_ad_server_re_sent_it_is_not_charged_twice(
    services: Services,
) -> None:
    business_center = await services.business_center()
    late_account = unique("acc")
    spend = services.spend_event(late_account, 3 * USD)
    await services.send_spends([spend])
    await _dead_lettered(services, late_account)
    await services.ad_account(business_center, account_id=late_account)
    await services.known_to_spend_consumer(late_account)
    await services.pay(late_account, 10 * USD)
    await services.balance_until(late_account, "available_micros", 10 * USD)

    # The ad server sends the same event again once the account exists: it is charged (it was
    # dead-lettered, not applied). The operator then replays the dead letter too: nothing more.
    await services.send_spends([spend])
    await services.balance_until(late_account, "available_micros", 7 * USD)
    replay = await adledger("dlq", "replay", f"{services.spend_topic}.dlq", "--reason", late_account, "--json")
    assert replay.returncode == 0, replay
    [published] = replay.json()["replays"]
    assert published["outcome"] == "published"
    await _applied_through(services, published["destination_partition"], published["published_offset"])
    assert (await services.balance(late_account))["available_micros"] == 7 * USD

    # `dlq list` counts it under its topic and reason.
    listed = await adledger("dlq", "list", "--topic", services.spend_topic, "--json")
    assert listed.returncode == 0, listed
    [topic] = listed.json()
    assert topic["topic"] == f"{services.spend_topic}.dlq" and topic["exists"]
    assert {"reason": f"unknown ad account {late_account}", "records": 1} in topic["reasons"]


async def test_s4_delivery_state_shows_what_an_ad_server_sees_of_an_account_paused_at_zero(services: Services) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 2 * USD)
    await services.balance_until(account, "available_micros", 2 * USD)
    await services.send_spends([services.spend_event(account, 2 * USD)])
    await services.state_until(account, lambda row: not row["serving"], "the account paused at zero")
    await services.records_for("delivery.state.v1", {account}, expect=1)

    shown = await adledger("delivery", "state", "--account", account, "--json")
    assert shown.returncode == 0, shown
    [state] = shown.json()
    assert (state["key"], state["ad_account_id"], state["campaign_id"]) == (account, account, None)
    assert (state["serving"], state["reason"]) == (False, "insufficient_funds")
    assert state["since"] is not None
