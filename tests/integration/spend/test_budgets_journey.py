"""Budgets, caps, campaign statuses, prepaid bookings and posted spend on the real stack, with the
wallet in-process beside the spend consumer. The tests publish the campaign service's snapshots
(`CampaignChanged`, `AdAccountBudgetCapChanged`) themselves, on a campaign topic of their own."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from adledger_contracts.external import SpendReported
from adledger_libs.consumer import Inbound
from adledger_libs.outbox import UnitOfWork

from .conftest import USD, Services, values

pytestmark = pytest.mark.integration


async def _funded_account(services: Services, micros: int = 100 * USD) -> str:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, micros)
    await services.balance_until(account, "available_micros", micros)
    return account


async def _campaign(services: Services, account: str, campaign: str, **fields: Any) -> None:
    event = await services.campaign(account, campaign, **fields)
    await services.campaign_until(account, campaign, event.version)


async def _decisions(services: Services, account: str, expect: int) -> list[tuple[str | None, str, str]]:
    records = values(await services.records_for("delivery.control.v1", {account}, expect=expect))
    return [(item["campaign_id"], item["action"], item["reason"]) for item in records]


async def test_s3_campaign_budget_pauses_with_cause_event_inside_batch(services: Services) -> None:
    account = await _funded_account(services)
    await _campaign(services, account, "c1", budget_micros=10 * USD)

    spends = [services.spend_event(account, amount, campaign_id="c1") for amount in (4 * USD, 4 * USD, 2 * USD, 1 * USD)]
    other = services.spend_event(account, 50 * USD, campaign_id="c2")
    await services.send_spends([*spends, other])

    # S2: what was served after the budget was reached is still taken, from the account's funds.
    await services.balance_until(account, "available_micros", 39 * USD)
    state = await services.state_until(f"{account}/c1", lambda row: not row["serving"])
    assert state["reason"] == "campaign_budget_reached" and state["campaign_id"] == "c1"
    pauses = await services.pauses_until(account, lambda rows: len(rows) == 1)
    # S3: the cause is exactly the event whose spend reached the budget, inside the batch.
    assert (pauses[0]["campaign_id"], pauses[0]["reason"], pauses[0]["cause_event_id"]) == ("c1", "campaign_budget_reached", spends[2].event_id)
    decisions = values(await services.records_for("delivery.control.v1", {account}, expect=1))
    assert [(item["campaign_id"], item["action"], item["reason"], item["cause_event_id"]) for item in decisions] == [
        ("c1", "pause", "campaign_budget_reached", spends[2].event_id)
    ]
    # The other campaign (no budget known) and the account keep serving.
    assert await services.never_paused(account) and await services.never_paused(f"{account}/c2")


async def test_s3_daily_budget_resumes_next_utc_day(services: Services) -> None:
    account = await _funded_account(services)
    await _campaign(services, account, "daily", budget_micros=5 * USD, budget_kind="daily")

    await services.send_spends([services.spend_event(account, 3 * USD, campaign_id="daily"), services.spend_event(account, 2 * USD, campaign_id="daily")])
    await services.state_until(f"{account}/daily", lambda row: not row["serving"] and row["reason"] == "campaign_budget_reached")
    # Later the same day nothing renews.
    services.clock.set(datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC))
    assert await services.run_budget_periods() == 0
    assert not (await services.state_of(f"{account}/daily"))["serving"]  # type: ignore[index]

    # T1: the next UTC day (clock moved, job run), the daily budget starts again.
    services.clock.set(datetime(2026, 11, 22, 0, 0, 1, tzinfo=UTC))
    assert await services.run_budget_periods() == 1
    state = await services.state_until(f"{account}/daily", lambda row: row["serving"])
    assert state["reason"] == "budget_period_renewed"
    # The new day's spend counts from zero: 4 of 5 does not pause it, the next 1 does.
    await services.send_spends([services.spend_event(account, 4 * USD, campaign_id="daily")])
    await services.balance_until(account, "available_micros", 91 * USD)
    assert (await services.state_of(f"{account}/daily"))["serving"]  # type: ignore[index]
    crossing = services.spend_event(account, 1 * USD, campaign_id="daily")
    await services.send_spends([crossing])
    await services.state_until(f"{account}/daily", lambda row: not row["serving"])
    assert await _decisions(services, account, expect=3) == [
        ("daily", "pause", "campaign_budget_reached"), ("daily", "resume", "budget_period_renewed"), ("daily", "pause", "campaign_budget_reached"),
    ]
    pauses = await services.pauses_until(account, lambda rows: len(rows) == 2)
    assert pauses[1]["cause_event_id"] == crossing.event_id and pauses[0]["resumed_at"] is not None


async def test_s3_account_cap_monthly(services: Services) -> None:
    account = await _funded_account(services)
    # Spend of the month before the cap was set counts for it (W10: the cap is for the period).
    await services.send_spends([services.spend_event(account, 3 * USD, campaign_id="c1")])
    await services.balance_until(account, "available_micros", 97 * USD)
    cap = await services.cap(account, "monthly", 10 * USD)
    await services.cap_until(account, cap.version)

    first, crossing, after = (
        services.spend_event(account, 4 * USD, campaign_id="c1"),
        services.spend_event(account, 3 * USD, campaign_id="c2"),
        services.spend_event(account, 1 * USD, campaign_id="c1"),
    )
    await services.send_spends([first, crossing, after])
    state = await services.state_until(account, lambda row: not row["serving"])
    assert state["reason"] == "account_budget_reached" and state["campaign_id"] is None
    pauses = await services.pauses_until(account, lambda rows: len(rows) == 1)
    assert (pauses[0]["campaign_id"], pauses[0]["cause_event_id"]) == (None, crossing.event_id)

    # Still November: nothing renews. December: the monthly cap's period rolled over.
    services.clock.set(datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    assert await services.run_budget_periods() == 0
    services.clock.set(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    assert await services.run_budget_periods() == 1
    assert (await services.state_until(account, lambda row: row["serving"]))["reason"] == "account_budget_period_renewed"
    decisions = values(await services.records_for("delivery.control.v1", {account}, expect=2))
    assert [(item["campaign_id"], item["action"], item["reason"], item["cause_event_id"]) for item in decisions] == [
        (None, "pause", "account_budget_reached", crossing.event_id), (None, "resume", "account_budget_period_renewed", None),
    ]


async def test_s3_account_cap_daily(services: Services) -> None:
    account = await _funded_account(services)
    cap = await services.cap(account, "daily", 5 * USD)
    await services.cap_until(account, cap.version)
    crossing = services.spend_event(account, 5 * USD)
    await services.send_spends([services.spend_event(account, 0 + 1, campaign_id="c9"), crossing])
    state = await services.state_until(account, lambda row: not row["serving"])
    assert state["reason"] == "account_budget_reached"
    assert (await services.pauses_until(account, lambda rows: len(rows) == 1))[0]["cause_event_id"] == crossing.event_id

    services.clock.set(datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
    assert await services.run_budget_periods() == 1
    assert (await services.state_until(account, lambda row: row["serving"]))["reason"] == "account_budget_period_renewed"
    # The new day's spend counts from zero.
    await services.send_spends([services.spend_event(account, 4 * USD)])
    await services.balance_until(account, "available_micros", 100 * USD - 9 * USD - 1)
    assert (await services.state_of(account))["serving"]  # type: ignore[index]


async def test_s3_account_cap_custom(services: Services) -> None:
    account = await _funded_account(services)
    # A custom cap for today and tomorrow (both included).
    cap = await services.cap(account, "custom", 6 * USD, starts_on=date(2026, 11, 21), ends_on=date(2026, 11, 22))
    await services.cap_until(account, cap.version)
    await services.send_spends([services.spend_event(account, 4 * USD)])
    await services.balance_until(account, "available_micros", 96 * USD)
    services.clock.set(datetime(2026, 11, 22, 12, tzinfo=UTC))
    assert await services.run_budget_periods() == 0
    # Spend of both days counts: 4 yesterday + 2 today reaches 6.
    crossing = services.spend_event(account, 2 * USD)
    await services.send_spends([crossing])
    await services.state_until(account, lambda row: not row["serving"] and row["reason"] == "account_budget_reached")
    assert (await services.pauses_until(account, lambda rows: len(rows) == 1))[0]["cause_event_id"] == crossing.event_id

    # The day after its last day the cap no longer applies: the account resumes.
    services.clock.set(datetime(2026, 11, 23, 0, 0, 1, tzinfo=UTC))
    assert await services.run_budget_periods() == 1
    assert (await services.state_until(account, lambda row: row["serving"]))["reason"] == "account_budget_period_renewed"


async def test_s3_raise_budget_resumes(services: Services) -> None:
    account = await _funded_account(services)
    await _campaign(services, account, "c1", budget_micros=5 * USD)
    cap = await services.cap(account, "monthly", 8 * USD)
    await services.cap_until(account, cap.version)
    await services.send_spends([services.spend_event(account, 5 * USD, campaign_id="c1")])
    await services.state_until(f"{account}/c1", lambda row: not row["serving"])

    # A raise to exactly the spend keeps it paused; above it, the campaign resumes.
    await _campaign(services, account, "c1", budget_micros=5 * USD)
    await _campaign(services, account, "c1", budget_micros=7 * USD)
    assert (await services.state_until(f"{account}/c1", lambda row: row["serving"]))["reason"] == "budget_raised"

    await services.send_spends([services.spend_event(account, 3 * USD, campaign_id="c2")])
    await services.state_until(account, lambda row: not row["serving"] and row["reason"] == "account_budget_reached")
    # The cap lifted (unlimited) resumes the account.
    lifted = await services.cap(account, "unlimited", None)
    await services.cap_until(account, lifted.version)
    assert (await services.state_until(account, lambda row: row["serving"]))["reason"] == "account_budget_raised"

    # A budget lowered to the spend pauses the campaign again; no spend tipped it.
    await _campaign(services, account, "c1", budget_micros=5 * USD)
    await services.state_until(f"{account}/c1", lambda row: not row["serving"])
    records = values(await services.records_for("delivery.control.v1", {account}, expect=5))
    assert [(item["campaign_id"], item["action"], item["reason"]) for item in records] == [
        ("c1", "pause", "campaign_budget_reached"), ("c1", "resume", "budget_raised"),
        (None, "pause", "account_budget_reached"), (None, "resume", "account_budget_raised"),
        ("c1", "pause", "campaign_budget_reached"),
    ]
    assert records[-1]["cause_event_id"] is None


async def test_s3_aba_bc_zero_pauses_campaign_whatever_budget(services: Services) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center, aba_eligible=True)
    await services.command("POST", f"/v1/business-centers/{business_center}/aba", services.admin_token)
    await services.known_to_spend_consumer(account, aba=True)
    await services.pay(business_center, 5 * USD)
    await services.balance_until(business_center, "available_micros", 5 * USD)
    await _campaign(services, account, "big", budget_micros=1_000 * USD)

    crossing = services.spend_event(account, 5 * USD, campaign_id="big")
    await services.send_spends([crossing])
    # The Business Center at zero pauses the whole account (all its campaigns), whatever the budget.
    state = await services.state_until(account, lambda row: not row["serving"])
    assert state["reason"] == "insufficient_funds"
    decisions = values(await services.records_for("delivery.control.v1", {account}, expect=1))
    assert [(item["campaign_id"], item["action"], item["reason"], item["business_center_id"], item["cause_event_id"]) for item in decisions] == [
        (None, "pause", "insufficient_funds", business_center, crossing.event_id)
    ]
    assert await services.never_paused(f"{account}/big"), "the campaign's own budget is far from reached"


async def test_s4_campaign_state_key(services: Services) -> None:
    account = await _funded_account(services, 3 * USD)
    await _campaign(services, account, "c1", budget_micros=1 * USD)
    await services.send_spends([services.spend_event(account, 1 * USD, campaign_id="c1"), services.spend_event(account, 2 * USD, campaign_id="c2")])
    await services.state_until(account, lambda row: not row["serving"])
    await services.state_until(f"{account}/c1", lambda row: not row["serving"])

    # S4: the latest state of a campaign is keyed ad_account_id/campaign_id, of the account ad_account_id.
    states = await services.records_for("delivery.state.v1", {account, f"{account}/c1"}, expect=2)
    by_key = {record.key.decode(): values([record])[0] for record in states if record.key is not None}
    assert by_key[f"{account}/c1"] == {**by_key[f"{account}/c1"], "ad_account_id": account, "campaign_id": "c1", "serving": False, "reason": "campaign_budget_reached"}
    assert by_key[account] == {**by_key[account], "ad_account_id": account, "campaign_id": None, "serving": False, "reason": "insufficient_funds"}
    # delivery.control.v1 stays keyed by the ad account, for a campaign's decision too (CONTRACT.md).
    controls = await services.records_for("delivery.control.v1", {account}, expect=2)
    assert sorted(str(item["campaign_id"]) for item in values(controls)) == ["None", "c1"]
    assert {record.key for record in controls} == {account.encode()}


async def test_c5_manual_pause_and_resume_and_statuses_that_do_not_serve(services: Services) -> None:
    account = await _funded_account(services)
    await _campaign(services, account, "c1", budget_micros=10 * USD, status="draft")
    await services.state_until(f"{account}/c1", lambda row: not row["serving"] and row["reason"] == "campaign_draft")
    await _campaign(services, account, "c1", budget_micros=10 * USD, status="active")
    assert (await services.state_until(f"{account}/c1", lambda row: row["serving"]))["reason"] == "campaign_activated"

    await _campaign(services, account, "c1", budget_micros=10 * USD, status="paused", pause_cause="user")
    # Another change of the paused campaign (same cause) is not a second pause; an older version is ignored.
    await _campaign(services, account, "c1", budget_micros=12 * USD, status="paused", pause_cause="user")
    await services.campaign(account, "c1", budget_micros=10 * USD, status="active", version=1)
    await services.state_until(f"{account}/c1", lambda row: not row["serving"] and row["reason"] == "manual")
    await _campaign(services, account, "c1", budget_micros=12 * USD, status="active")
    assert (await services.state_until(f"{account}/c1", lambda row: row["serving"]))["reason"] == "manual"

    await _campaign(services, account, "c1", budget_micros=12 * USD, status="ended")
    await services.state_until(f"{account}/c1", lambda row: not row["serving"] and row["reason"] == "campaign_ended")
    assert await _decisions(services, account, expect=5) == [
        ("c1", "pause", "campaign_draft"), ("c1", "resume", "campaign_activated"),
        ("c1", "pause", "manual"), ("c1", "resume", "manual"), ("c1", "pause", "campaign_ended"),
    ]


async def test_c1_s3_prepaid_spend_is_counted_against_the_booking_with_no_balance_change_and_pauses_at_booked(services: Services) -> None:
    account = await _funded_account(services, 10 * USD)
    await services.book(account, 5 * USD)
    held = await services.balance_until(account, "held_micros", 5 * USD)
    assert held["available_micros"] == 5 * USD
    await _campaign(services, account, "pre", budget_micros=5 * USD, funding_mode="prepaid", booked_micros=5 * USD)

    first, crossing = services.spend_event(account, 3 * USD, campaign_id="pre"), services.spend_event(account, 2 * USD, campaign_id="pre")
    await services.send_spends([first, crossing])
    await services.state_until(f"{account}/pre", lambda row: not row["serving"] and row["reason"] == "campaign_budget_reached")
    assert (await services.pauses_until(account, lambda rows: len(rows) == 1))[0]["cause_event_id"] == crossing.event_id
    # The booking's money is held by the wallet: delivering against it moved nothing.
    after = await services.balance(account)
    assert (after["available_micros"], after["held_micros"], after["real_micros"]) == (5 * USD, 5 * USD, 10 * USD)
    posted = values(await services.records_for(services.posted_topic, {account}, expect=1))
    assert sum(item["amount_micros"] for item in posted) == 5 * USD
    assert sum(item["from_booking_micros"] for item in posted) == 5 * USD
    assert {item["funding_mode"] for item in posted} == {"prepaid"}


async def test_c1_w7_s6_prepaid_spend_beyond_the_booking_is_taken_in_w7_order(services: Services) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.command("POST", f"/v1/business-centers/{business_center}/vouchers", "test-platform-token", {"amount_micros": 1 * USD})
    await services.command(
        "POST", f"/v1/business-centers/{business_center}/allocations", services.admin_token,
        {"ad_account_id": account, "bucket": "vouchers", "direction": "to_ad_account", "amount_micros": 1 * USD, "currency": "USD"},
    )
    await services.pay(account, 10 * USD)
    # The booking is held only once the payment is in (a hold the cash cannot cover is refused).
    await services.balance_until(account, "available_micros", 11 * USD)
    await services.book(account, 2 * USD)
    await services.balance_until(account, "held_micros", 2 * USD)
    await services.balance_until(account, "available_micros", 9 * USD)
    await _campaign(services, account, "pre", budget_micros=2 * USD, funding_mode="prepaid", booked_micros=2 * USD)

    # 2 against the booking, then 3 served after the pause (S2): vouchers first, then cash (W7).
    await services.send_spends([services.spend_event(account, 2 * USD, campaign_id="pre", charge_id="k1")])
    await services.state_until(f"{account}/pre", lambda row: not row["serving"])
    await services.send_spends([services.spend_event(account, 3 * USD, campaign_id="pre")])
    taken = await services.balance_until(account, "available_micros", 6 * USD)
    assert (taken["buckets"]["vouchers"], taken["buckets"]["cash"], taken["held_micros"]) == (0, 8 * USD, 2 * USD)

    # S6: a higher final cost of the first charge takes only the difference, beyond the booking.
    await services.send_spends([services.spend_event(account, 2 * USD + 500_000, campaign_id="pre", charge_id="k1")])
    await services.balance_until(account, "available_micros", 5 * USD + 500_000)
    # A lower one gives back the W7 part first, then the booking's part.
    await services.send_spends([services.spend_event(account, 1 * USD, campaign_id="pre", charge_id="k1")])
    await services.balance_until(account, "available_micros", 6 * USD)
    posted = values(await services.records_for(services.posted_topic, {account}, expect=4))
    assert [(item["amount_micros"], item["from_booking_micros"]) for item in posted] == [
        (2 * USD, 2 * USD), (3 * USD, 0), (500_000, 0), (-1 * USD - 500_000, -1 * USD),
    ]


async def test_spend_posted_sums_are_exact_per_account_and_campaign_and_stable_across_a_replay(services: Services) -> None:
    first_account = await _funded_account(services)
    second_account = await _funded_account(services)
    sent = [
        services.spend_event(first_account, 1_000_001, campaign_id="c1"),
        services.spend_event(first_account, 2_000_002, campaign_id="c2"),
        services.spend_event(first_account, 3_000_003, campaign_id="c1", charge_id="k1"),
        services.spend_event(second_account, 4_000_004, campaign_id="c1"),
        services.spend_event(first_account, 3_500_000, campaign_id="c1", charge_id="k1"),
    ]
    await services.send_spends(sent)
    await services.balance_until(first_account, "available_micros", 100 * USD - 6_500_003)
    await services.balance_until(second_account, "available_micros", 100 * USD - 4_000_004)

    posted = values(await services.records_for(services.posted_topic, {first_account, second_account}, expect=3))
    totals: dict[tuple[str, str], int] = {}
    for item in posted:
        key = (item["ad_account_id"], item["campaign_id"])
        totals[key] = totals.get(key, 0) + item["amount_micros"]
    # Every micro once: the final cost of k1 counts only its difference.
    assert totals == {(first_account, "c1"): 4_500_001, (first_account, "c2"): 2_000_002, (second_account, "c1"): 4_000_004}
    assert sum(item["spend_event_count"] for item in posted) == 5
    assert len({item["event_id"] for item in posted}) == len(posted)
    assert all(item["funding_mode"] == "drawdown" and item["currency"] == "USD" for item in posted)

    # A replay of one batch (a transaction rolled back and applied again) publishes the same ids.
    replay = [services.spend_event(second_account, 1 * USD, campaign_id="r1"), services.spend_event(second_account, 2 * USD, campaign_id="r1")]
    assert await _posted_in_rolled_back_batch(services, replay) == await _posted_in_rolled_back_batch(services, replay)


async def _posted_in_rolled_back_batch(services: Services, spends: list[SpendReported]) -> list[tuple[str, str]]:
    """Apply a batch with the service's own consumer in a transaction that is then rolled back;
    returns the SpendPosted rows it wrote to the outbox (event id, value)."""
    batch = [
        Inbound(topic=services.spend_topic, partition=0, offset=10_000 + index, key=spend.ad_account_id, headers={},
                message=spend, event_id=spend.event_id, trace_id="trace-replay")
        for index, spend in enumerate(spends)
    ]
    found: list[tuple[str, str]] = []
    async with services.spend_service.runtime.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            uow = UnitOfWork(conn)
            await services.spend_service.consumer.apply_spends(uow, batch)
            await uow.flush()
            rows = await conn.fetch("select event_id, value from outbox where topic = $1 order by id", services.posted_topic)
            found = [
                (row["event_id"], bytes(row["value"]).decode()) for row in rows
                if json.loads(bytes(row["value"]))["campaign_id"] == spends[0].campaign_id
            ]
        finally:
            await transaction.rollback()
    assert len(found) == 1, found
    return found


async def test_c5_a_snapshot_read_before_its_account_is_known_here_is_decided_when_the_account_opens(services: Services) -> None:
    business_center = await services.business_center()
    account = f"{business_center}-late"
    # The campaign service's snapshot overtakes the wallet's AdAccountOpened: it is kept, not acted on.
    event = await services.campaign(account, "c1", budget_micros=10 * USD, status="paused", pause_cause="user")
    await services.campaign_until(account, "c1", event.version)
    assert await services.never_paused(f"{account}/c1")
    await services.command(
        "POST", f"/v1/business-centers/{business_center}/ad-accounts", services.admin_token,
        {"id": account, "name": "late", "type": "reservation", "billing_option": "prepaid"},
    )
    await services.known_to_spend_consumer(account)
    assert (await services.state_until(f"{account}/c1", lambda row: not row["serving"]))["reason"] == "manual"
    assert await _decisions(services, account, expect=1) == [("c1", "pause", "manual")]
