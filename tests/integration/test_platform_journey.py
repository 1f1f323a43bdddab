"""Whole-platform journeys: the wallet, the spend consumer, invoicing (with its local payment
provider and e-mail adapter) and the campaign service run together in-process on the real Kafka
and PostgreSQL, with one ManualClock (see platform.py). No test stands in for a service: money
comes in only through invoices paid by the provider's signed webhooks, the campaign service's
IssueInvoice reaches the real invoicing service, spend goes through the real spend consumer.
Everything is read over the services' HTTP APIs or their topics; deadlines are acted on by
running the services' jobs after moving the clock (T1)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import pytest_asyncio

from .conftest import Stack
from .invoicing.conftest import PLATFORM, until
from .platform import USD, Platform, platform_world

pytestmark = pytest.mark.integration
H48 = timedelta(hours=48)


@pytest_asyncio.fixture
async def platform(stack: Stack) -> AsyncIterator[Platform]:
    async with platform_world(stack) as world:
        yield world


async def test_c1_c2_c3_i1_i5_s3_prepaid_campaign_across_every_service(platform: Platform) -> None:
    billing, campaigns = platform.billing, platform.campaigns
    business_center = await platform.business_center()
    # A manual ad account (W7: it draws on its own cash only), funded through invoicing.
    account = await platform.ad_account(business_center, kind="reservation", billing_option="prepaid")
    billing_token = await platform.set_up_people(business_center, account, billing_owner_id=account)

    # I1, I5: a top-up is money only once the provider's signed webhook says paid; credited once.
    top_up = (await billing.top_up(billing_token, account, amount_micros=40 * USD)).json()["invoice"]
    assert (top_up["status"], top_up["purpose"]) == ("open", "top_up")
    assert await platform.pay(top_up["id"]) == ["paid"]
    funded = await billing.wallet_balance_until(account, "real_micros", 40 * USD)
    assert (funded["virtual_micros"], funded["held_micros"]) == (40 * USD, 0)

    # C1: a prepaid budget of twice the balance: the covered half is held, the rest invoiced by
    # the campaign service's IssueInvoice, which the real invoicing service issues.
    ends_at = platform.clock.now() + timedelta(days=3)
    campaign_id = await campaigns.create(80 * USD, ends_at, funding_mode="prepaid")
    activated = await campaigns.command("POST", f"/v1/campaigns/{campaign_id}/activate", campaigns.token)
    assert activated.status_code == 200, activated.text
    waiting = await campaigns.campaign_until(campaign_id, status="awaiting_payment", booked_micros=40 * USD)
    assert waiting["payer_owner_id"] == account
    held = await billing.wallet_balance_until(account, "virtual_micros", 0)
    assert (held["real_micros"], held["held_micros"]) == (40 * USD, 40 * USD)
    shortfall = await platform.invoice_until(waiting["open_invoice_id"], status="open")
    assert (shortfall["purpose"], shortfall["payer_id"], shortfall["amount_micros"], shortfall["reference_id"]) == (
        "activation_shortfall", account, 40 * USD, campaign_id,
    )

    # Paid through the provider → InvoicePaid → the wallet's FundsReceived → the rest is booked.
    assert await platform.pay(shortfall["id"]) == ["paid"]
    await platform.invoice_until(shortfall["id"], status="paid")
    active = await campaigns.campaign_until(campaign_id, status="active", booked_micros=80 * USD)
    assert active["open_invoice_id"] is None
    booked = await billing.wallet_balance_until(account, "real_micros", 80 * USD)
    assert (booked["virtual_micros"], booked["held_micros"]) == (0, 80 * USD)

    # Spend through the real spend consumer, counted against the booking: no money moves (the
    # wallet holds it), SpendPosted reaches the campaign service, delivered grows.
    await platform.spend_consumer_knows(account, campaign_id, lambda row: row["booked_micros"] == 80 * USD and row["status"] == "active", "the booking")
    await platform.send(platform.spend(account, campaign_id, 10 * USD), platform.spend(account, campaign_id, 20 * USD))
    await campaigns.campaign_until(campaign_id, delivered_micros=30 * USD)
    posted = await platform.posted(account, 1)
    assert (sum(item["amount_micros"] for item in posted), sum(item["from_booking_micros"] for item in posted)) == (30 * USD, 30 * USD)
    assert {(item["campaign_id"], item["funding_mode"]) for item in posted} == {(campaign_id, "prepaid")}
    unmoved = await billing.wallet_balance(account)
    assert (unmoved["real_micros"], unmoved["virtual_micros"], unmoved["held_micros"]) == (80 * USD, 0, 80 * USD)

    # C2: a lower budget gives the difference back to the balance at once.
    reduced = await platform.change_budget(campaign_id, 50 * USD)
    assert reduced["booked_micros"] == 50 * USD, reduced
    released = await billing.wallet_balance_until(account, "virtual_micros", 30 * USD)
    assert (released["real_micros"], released["held_micros"]) == (80 * USD, 50 * USD)

    # S3: spend reaching the booking pauses the campaign, naming the event that reached it.
    await platform.spend_consumer_knows(account, campaign_id, lambda row: row["booked_micros"] == 50 * USD, "the reduced booking")
    before, crossing = platform.spend(account, campaign_id, 15 * USD), platform.spend(account, campaign_id, 5 * USD)
    await platform.send(before, crossing)
    paused = await campaigns.campaign_until(campaign_id, status="paused", pause_cause="budget", delivered_micros=50 * USD)
    assert paused["booked_micros"] == 50 * USD
    [budget_pause] = [d for d in await platform.decision_until(account, "campaign_budget_reached") if d["reason"] == "campaign_budget_reached"]
    assert (budget_pause["action"], budget_pause["campaign_id"], budget_pause["cause_event_id"]) == ("pause", campaign_id, crossing.event_id)
    spent = await billing.wallet_balance(account)
    assert (spent["real_micros"], spent["virtual_micros"]) == (80 * USD, 30 * USD), "delivered from the booking: still held, not yet posted"

    # C2 the other way: a higher budget holds the difference; the spend consumer lifts its own
    # budget pause (budget_raised) and the campaign service shows it active again.
    raised = await platform.change_budget(campaign_id, 60 * USD)
    assert raised["budget_micros"] == 60 * USD, raised
    rebooked = await billing.wallet_balance_until(account, "virtual_micros", 20 * USD)
    assert (rebooked["real_micros"], rebooked["held_micros"]) == (80 * USD, 60 * USD)
    await platform.decision_until(account, "budget_raised")
    await campaigns.campaign_until(campaign_id, status="active", pause_cause=None, booked_micros=60 * USD)

    # C3: the end, then 48 hours later the underdelivery (60 − 50 > 1 unit) is credited back:
    # the wallet's real balance is what was funded less what was delivered, and no hold is left.
    platform.clock.set(ends_at)
    deadlines = campaigns.instance.service.deadlines
    assert await deadlines.run() == 1
    await campaigns.campaign_until(campaign_id, status="ended")
    platform.clock.advance(H48 - timedelta(seconds=1))
    assert await deadlines.run() == 0, "not before 48 hours"
    platform.clock.advance(timedelta(seconds=1))
    assert await deadlines.run() == 1
    assert await deadlines.run() == 0, "settled once"
    settled = await billing.wallet_balance_until(account, "real_micros", 80 * USD - 50 * USD)
    assert (settled["virtual_micros"], settled["held_micros"]) == (30 * USD, 0), "no holds left: virtual = real"
    done = await campaigns.campaign_until(campaign_id, settled=True, booked_micros=0)
    assert (done["delivered_micros"], done["credited_micros"]) == (50 * USD, 10 * USD)
    campaign_decisions = [(d["action"], d["reason"]) for d in await platform.decisions(account, 0) if d["campaign_id"] == campaign_id]
    assert campaign_decisions == [
        ("pause", "campaign_draft"), ("pause", "campaign_awaiting_payment"), ("resume", "campaign_activated"),
        ("pause", "campaign_budget_reached"), ("resume", "budget_raised"), ("pause", "campaign_ended"),
    ], "S4: each cause once, in order"


async def test_w8_i2_s4_drawdown_pause_and_resume_by_paid_top_up(platform: Platform) -> None:
    billing, campaigns = platform.billing, platform.campaigns
    business_center, [account] = await billing.business_center(aba_accounts=1)
    billing_token = await platform.set_up_people(business_center, account, billing_owner_id=business_center)

    # W5: Budget Sync gave the ABA account a cap of what it had (0); its Admin lifts it (W9, W10).
    async def budget_sync_known() -> bool:
        rows = await billing.fetch(f"select version from {billing.spend_schema}.account_caps where ad_account_id = $1", account)
        return bool(rows) and rows[0]["version"] >= 1

    await until(budget_sync_known, "the Budget Sync cap at the spend consumer")
    lifted = await campaigns.command("PUT", f"/v1/ad-accounts/{account}/budget-cap", PLATFORM, {"kind": "unlimited"})
    assert lifted.status_code == 200 and lifted.json()["version"] == 2, lifted.text

    async def cap_lifted() -> bool:
        rows = await billing.fetch(f"select version from {billing.spend_schema}.account_caps where ad_account_id = $1", account)
        return rows[0]["version"] == 2

    await until(cap_lifted, "the lifted cap at the spend consumer")

    first = (await billing.top_up(billing_token, business_center, amount_micros=5 * USD)).json()["invoice"]
    assert await platform.pay(first["id"]) == ["paid"]
    await billing.wallet_balance_until(business_center, "real_micros", 5 * USD)

    campaign_id = await campaigns.create(100 * USD, platform.clock.now() + timedelta(days=10), funding_mode="drawdown")
    assert (await campaigns.command("POST", f"/v1/campaigns/{campaign_id}/activate", campaigns.token)).status_code == 200
    await campaigns.campaign_until(campaign_id, status="active")
    await platform.spend_consumer_knows(account, campaign_id, lambda row: row["status"] == "active", "the active campaign")

    # W8: the BC (its ABA account draws on it) spent to zero and beyond (S2): the account pauses.
    opening, crossing = platform.spend(account, campaign_id, 2 * USD), platform.spend(account, campaign_id, 4 * USD)
    await platform.send(opening, crossing)
    await billing.wallet_balance_until(business_center, "real_micros", -1 * USD)
    [pause] = [d for d in await platform.decision_until(account, "insufficient_funds") if d["reason"] == "insufficient_funds"]
    assert (pause["action"], pause["campaign_id"], pause["cause_event_id"]) == ("pause", None, crossing.event_id)
    await campaigns.campaign_until(campaign_id, status="paused", pause_cause="funds")
    await billing.overview_until(business_center, -1 * USD)
    # W12 across the services: the dip below half the last payment raises one prepayment invoice
    # (last payment − virtual = 5 − (−1)).
    await billing.invoices_until(business_center, lambda found: any(item["purpose"] == "prepayment" for item in found), "the W12 prepayment invoice")

    # I2: top up to a target of 10: invoiced 10 − (−1) = 11; paid by two webhooks, credited once.
    answer = await billing.top_up(billing_token, business_center, target_micros=10 * USD)
    assert answer.status_code == 201 and answer.json()["amount_micros"] == 11 * USD, answer.text
    invoice = answer.json()["invoice"]
    assert await platform.pay(invoice["id"], "pay_twice") == ["paid", "already_paid"]
    paid = await billing.wallet_balance_until(business_center, "real_micros", 10 * USD)
    assert paid["available_micros"] == 10 * USD, "the overspend was covered first, once"

    # W8, S4: delivery resumes by itself, and the compacted state topic has the latest state.
    await platform.decision_until(account, "funds_restored")
    decisions = [(d["action"], d["reason"], d["campaign_id"]) for d in await platform.decisions(account, 0)]
    assert decisions == [
        ("pause", "account_budget_reached", None), ("resume", "account_budget_raised", None),  # Budget Sync's 0, then lifted
        ("pause", "campaign_draft", campaign_id), ("resume", "campaign_activated", campaign_id),
        ("pause", "insufficient_funds", None), ("resume", "funds_restored", None),
    ], "S4: every pause and resume with its reason, each once"
    await campaigns.campaign_until(campaign_id, status="active", pause_cause=None)
    states = await billing.records(billing.state_topic, {account}, 2, settle_s=0.3)
    latest = states[-1]
    assert latest.headers["event-type"] == "DeliveryStateChanged"
    state = json.loads(latest.value or b"{}")
    assert (state["ad_account_id"], state["campaign_id"], state["serving"], state["reason"]) == (account, None, True, "funds_restored")
    balance = await billing.wallet_balance(business_center)
    assert balance["real_micros"] == 10 * USD, "credited once"
    # One prepayment invoice (W12), still open: the top-up did not settle it (I3).
    invoices = await billing.invoices_until(business_center, lambda found: len(found) == 3, "three invoices of the Business Center")
    assert sorted((item["purpose"], item["status"], item["amount_micros"]) for item in invoices) == [
        ("prepayment", "open", 6 * USD), ("top_up", "paid", 5 * USD), ("top_up", "paid", 11 * USD),
    ]


async def test_i7_monthly_invoice_from_real_posted_spend(platform: Platform) -> None:
    billing, campaigns = platform.billing, platform.campaigns
    business_center = await platform.business_center()
    account = await platform.ad_account(business_center, kind="auction", billing_option="monthly_invoicing")
    billing_token = await platform.set_up_people(business_center, account, billing_owner_id=account)
    top_up = (await billing.top_up(billing_token, account, amount_micros=10 * USD)).json()["invoice"]
    assert await platform.pay(top_up["id"]) == ["paid"]
    await billing.wallet_balance_until(account, "real_micros", 10 * USD)

    ends_at = platform.clock.now() + timedelta(days=20)
    first, second = [await campaigns.create(100 * USD, ends_at, funding_mode="drawdown") for _ in range(2)]
    for campaign_id in (first, second):
        assert (await campaigns.command("POST", f"/v1/campaigns/{campaign_id}/activate", campaigns.token)).status_code == 200
        await campaigns.campaign_until(campaign_id, status="active")
        await platform.spend_consumer_knows(account, campaign_id, lambda row: row["status"] == "active", f"campaign {campaign_id} active")

    async def summed(month: date, count: int) -> bool:
        rows = await billing.fetch(
            f"select coalesce(sum(event_count), 0) as n from {billing.invoicing_schema}.monthly_spend where ad_account_id = $1 and month = $2",
            account, month,
        )
        return rows[0]["n"] == count

    # November's spend, through the real spend consumer; invoicing sums its SpendPosted.
    await platform.send(platform.spend(account, first, 3 * USD), platform.spend(account, second, 2 * USD), platform.spend(account, first, 1_500_000))
    await until(lambda: summed(date(2026, 11, 1), 3), "November's posted spend summed by invoicing")
    # Spend posted after midnight UTC on 1 December belongs to December (T1, the posting clock).
    platform.clock.set(datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC))
    await platform.send(platform.spend(account, first, USD))
    await until(lambda: summed(date(2026, 12, 1), 1), "December's posted spend summed by invoicing")
    posted = await platform.posted(account, 1)
    november = [item for item in posted if item["posted_at"].startswith("2026-11")]
    november_total = sum(item["amount_micros"] for item in november)
    assert november_total == 6_500_000 and sum(item["amount_micros"] for item in posted) == 7_500_000
    spent = await billing.wallet_balance_until(account, "real_micros", 10 * USD - 7_500_000)
    assert spent["virtual_micros"] == 2_500_000
    await campaigns.campaign_until(first, delivered_micros=5_500_000)

    # I7: November closes once: one invoice for the spend posted in it, one line per campaign.
    closed = [invoice for invoice in await billing.service.jobs.run_month_closes() if invoice.payer_id == account]
    assert len(closed) == 1, closed
    assert [invoice for invoice in await billing.service.jobs.run_month_closes() if invoice.payer_id == account] == [], "one invoice per month"
    monthly = await platform.invoice_until(closed[0].id, status="open")
    assert (monthly["purpose"], monthly["payer_id"], monthly["amount_micros"]) == ("monthly_spend", account, november_total)
    assert sorted(line["amount_micros"] for line in monthly["lines"]) == [2 * USD, 4_500_000], "one line per campaign"

    # Paid like any other invoice: the wallet puts the money back into the funds the spend used.
    assert await platform.pay(monthly["id"]) == ["paid"]
    repaid = await billing.wallet_balance_until(account, "real_micros", 10 * USD - 7_500_000 + november_total)
    assert repaid["virtual_micros"] == repaid["real_micros"]
