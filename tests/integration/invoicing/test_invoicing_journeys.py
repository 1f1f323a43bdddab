"""Invoicing on the real stack with the real wallet and spend consumer in-process (I1-I7, W8, W12,
C1, T1): top-ups become money only when the provider's signed webhook says paid, exactly once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from adledger_contracts.invoicing import IssueInvoice
from adledger_contracts.spending import SpendPosted
from adledger_contracts.wallet import PlaceHold, PrepaymentThresholdCrossed
from adledger_invoicing.domain.signatures import SIGNATURE_HEADER, sign
from adledger_libs.events import encode

from ..conftest import unique
from ..kafka_io import encoded, produce
from .conftest import PLATFORM, SECRET, USD, Billing, typed, until

pytestmark = pytest.mark.integration


async def test_i1_i2_i5_i8_m5_w8_journey_bc_at_zero_paused_top_up_to_target_webhook_twice_credited_once_delivery_resumed(billing: Billing) -> None:
    business_center, [account] = await billing.business_center(aba_accounts=1)
    await billing.subscribe(business_center)
    token = await billing.billing_user(business_center)

    # Funds arrive only through a paid invoice: 5 USD, paid by the local provider's webhook.
    first = (await billing.top_up(token, business_center, amount_micros=5 * USD)).json()["invoice"]
    await billing.provider(first["id"], "pay")
    await billing.wallet_balance_until(business_center, "available_micros", 5 * USD)

    # The Business Center is spent to zero and beyond (S2): its ABA account pauses (W8).
    await billing.send_spends([billing.spend(account, 6 * USD)])
    await billing.wallet_balance_until(business_center, "real_micros", -1 * USD)

    async def paused() -> bool:
        rows = await billing.fetch(f"select * from {billing.spend_schema}.pauses where ad_account_id = $1", account)
        return len(rows) == 1 and rows[0]["resumed_at"] is None

    await until(paused, "the ABA account paused")
    await billing.overview_until(business_center, -1 * USD)

    # I2: top up to a target of 10 USD: the invoice is 10 − (−1) = 11 USD; nothing is credited yet (I1).
    answer = await billing.top_up(token, business_center, target_micros=10 * USD, key="to-target")
    assert answer.status_code == 201, answer.text
    invoice = answer.json()["invoice"]
    assert (answer.json()["amount_micros"], invoice["status"], invoice["amount"]) == (11 * USD, "open", "USD 11.00")
    again = await billing.top_up(token, business_center, target_micros=10 * USD, key="to-target")
    assert again.json() == answer.json(), "M5: the same key answers the first invoice again"
    overview = await billing.overview(business_center, token)
    assert overview["balance"]["real_micros"] == -1 * USD, "I1: a pending top-up is not in the balance"
    assert overview["pending_top_ups_micros"] == 11 * USD and [item["id"] for item in overview["pending_top_ups"]] == [invoice["id"]]

    # The provider notifies the payment twice (two events, one payment): credited once (I5).
    paid = await billing.provider(invoice["id"], "pay_twice")
    assert [hook["answer"]["effect"] for hook in paid["webhooks"]] == ["paid", "already_paid"]
    assert [hook["status_code"] for hook in paid["webhooks"]] == [200, 200]
    balance = await billing.wallet_balance_until(business_center, "real_micros", 10 * USD)
    assert balance["available_micros"] == 10 * USD
    read = await billing.invoice(invoice["id"], token)
    assert (read["status"], read["payment_id"], read["version"]) == ("paid", paid["payment_id"], 2)

    # Delivery resumes by itself (W8), and InvoicePaid went out exactly once for this invoice.
    async def resumed() -> bool:
        rows = await billing.fetch(f"select * from {billing.spend_schema}.pauses where ad_account_id = $1", account)
        return len(rows) == 1 and rows[0]["resumed_at"] is not None

    await until(resumed, "the ABA account resumed")
    decisions = [json.loads(r.value or b"{}") for r in await billing.records("delivery.control.v1", {account}, expect=2)]
    assert [(d["action"], d["reason"]) for d in decisions] == [("pause", "insufficient_funds"), ("resume", "funds_restored")]
    events = await billing.records("invoicing.events.v1", {business_center}, expect=8)
    assert [e["invoice_id"] for e in typed(events, "InvoicePaid")] == [first["id"], invoice["id"]], "exactly once per invoice"
    snapshots = [(e["invoice_id"], e["status"]) for e in typed(events, "InvoiceStatusChanged") if e["invoice_id"] == invoice["id"]]
    assert snapshots == [(invoice["id"], "open"), (invoice["id"], "paid")]
    emails = {(e["template"], e["subject_id"]) for e in typed(events, "EmailRequested")}
    assert {("invoice_issued", invoice["id"]), ("invoice_paid", invoice["id"])} <= emails, "I8: e-mails are events"
    await billing.overview_until(business_center, 10 * USD)
    # The wallet saw the money exactly once: one FundsReceived for this invoice.
    received = typed(await billing.records(billing.wallet_events_topic, {business_center}, expect=1), "FundsReceived")
    assert [e["invoice_id"] for e in received].count(invoice["id"]) == 1

    # I2: a target at or below the balance creates no invoice and says so.
    reached = await billing.top_up(token, business_center, target_micros=10 * USD)
    assert reached.status_code == 200 and reached.json()["invoiced"] is False and "no invoice" in reached.json()["message"]

    # The invoice as a document a person accepts.
    document = await billing.invoicing.get(f"/v1/invoices/{invoice['id']}/document", headers={"Authorization": f"Bearer {token}"})
    assert document.status_code == 200 and document.headers["content-type"].startswith("text/html")
    assert read["number"] in document.text and "USD 11.00" in document.text and "paid" in document.text


async def test_i5_webhooks_are_signed_idempotent_and_a_failure_credits_nothing_even_after_a_success(billing: Billing) -> None:
    business_center, _ = await billing.business_center()
    await billing.subscribe(business_center)
    invoice = (await billing.top_up(PLATFORM, business_center, amount_micros=3 * USD)).json()["invoice"]
    body = json.dumps({"id": unique("evt"), "type": "payment.succeeded", "payment_id": "pay_x", "invoice_id": invoice["id"], "amount_micros": 3 * USD, "currency": "USD"}).encode()
    stamp = int(billing.clock.now().timestamp())

    async def post(payload: bytes, header: str | None) -> tuple[int, str]:
        headers = {SIGNATURE_HEADER: header} if header is not None else {}
        answer = await billing.invoicing.post("/v1/payments/webhook", content=payload, headers=headers)
        return answer.status_code, answer.json().get("error") or answer.json().get("effect")

    assert await post(body, None) == (400, "signature_missing")
    assert await post(body, sign("not the secret", stamp, body)) == (401, "signature_invalid")
    assert await post(body + b" ", sign(SECRET, stamp, body)) == (401, "signature_invalid"), "the body was changed"
    assert await post(body, sign(SECRET, stamp - 301, body)) == (401, "signature_expired"), "a replay of an old request"
    assert await post(b"not json", sign(SECRET, stamp, b"not json")) == (400, "invalid_notification")
    assert (await billing.invoice(invoice["id"]))["status"] == "open", "nothing was applied"

    failed = await billing.provider(invoice["id"], "fail")
    assert [hook["answer"]["effect"] for hook in failed["webhooks"]] == ["payment_failed"]
    assert (await billing.invoice(invoice["id"]))["status"] == "open", "I5: a failed payment credits nothing"

    late = await billing.provider(invoice["id"], "fail_after_success", key="late-key")
    assert [hook["answer"]["effect"] for hook in late["webhooks"]] == ["paid", "failure_after_success_ignored"]
    # The provider re-sends the same events (same ids): recognised, nothing changes.
    resent = await billing.provider(invoice["id"], "fail_after_success", key="late-key")
    assert [hook["answer"]["effect"] for hook in resent["webhooks"]] == ["duplicate", "duplicate"]
    # Another payment of a paid invoice is not credited (money due back), and its failure changes nothing.
    other = await billing.provider(invoice["id"], "fail_after_success")
    assert [hook["answer"]["effect"] for hook in other["webhooks"]] == ["refund_due", "failure_after_success_ignored"]
    assert await post(body, sign(SECRET, stamp, body)) == (200, "refund_due")
    await billing.wallet_balance_until(business_center, "real_micros", 3 * USD)
    payments = (await billing.call(billing.invoicing, "GET", f"/v1/invoices/{invoice['id']}/payments", PLATFORM)).json()
    assert [p["effect"] for p in payments].count("paid") == 1
    events = await billing.records("invoicing.events.v1", {business_center}, expect=3)
    assert len(typed(events, "InvoicePaid")) == 1, "credited exactly once"
    assert (await billing.wallet_balance(business_center))["real_micros"] == 3 * USD


async def test_i3_i4_w11_a_top_up_needs_a_subscription_never_settles_an_outstanding_invoice_and_targets_the_real_balance(billing: Billing) -> None:
    business_center, _ = await billing.business_center()
    token = await billing.billing_user(business_center)
    refused = await billing.top_up(token, business_center, amount_micros=USD)
    assert (refused.status_code, refused.json()["error"]) == (409, "subscription_inactive"), "I4"
    await billing.subscribe(business_center, "inactive")
    assert (await billing.top_up(token, business_center, amount_micros=USD)).status_code == 409
    # W9: a Finance Manager of another Business Center is told this one does not exist.
    other_business_center, _ = await billing.business_center()
    stranger = await billing.billing_user(other_business_center)
    assert (await billing.top_up(stranger, business_center, amount_micros=USD)).status_code == 404
    await billing.subscribe(business_center, "active")

    outstanding = (await billing.top_up(token, business_center, amount_micros=4 * USD)).json()["invoice"]
    top_up = (await billing.top_up(token, business_center, amount_micros=6 * USD)).json()["invoice"]
    await billing.provider(top_up["id"], "pay")
    await billing.wallet_balance_until(business_center, "real_micros", 6 * USD)
    assert (await billing.invoice(outstanding["id"], token))["status"] == "open", "I3: money in settles no outstanding invoice"
    overview = await billing.overview_until(business_center, 6 * USD)
    assert [item["id"] for item in overview["pending_top_ups"]] == [outstanding["id"]]
    # I5: the platform operator may void the outstanding one; a paid one cannot be voided.
    assert (await billing.call(billing.invoicing, "POST", f"/v1/invoices/{outstanding['id']}/void", PLATFORM)).json()["status"] == "void"
    refused_void = await billing.call(billing.invoicing, "POST", f"/v1/invoices/{top_up['id']}/void", PLATFORM)
    assert (refused_void.status_code, refused_void.json()["error"]) == (409, "illegal_transition")

    # W11: a hold makes the virtual balance 4 USD while the real one stays 6 USD; a target is
    # measured against the real balance, so 10 USD invoices 4 USD and the real balance is 10 once paid.
    hold = PlaceHold(idempotency_key=unique("hold"), hold_id=unique("hold"), owner_id=business_center, amount_micros=2 * USD, currency="USD", purpose="campaign_booking", requested_by="campaign")
    # As the campaign service would send it: signed by it (issue 12), on the world's wallet commands topic.
    commands = billing.wallet_commands_topic
    await produce(billing.stack.kafka_bootstrap_servers, commands, [encoded(hold, business_center, topic=commands)])
    await billing.wallet_balance_until(business_center, "virtual_micros", 4 * USD)

    async def seen() -> bool:
        found = await billing.overview(business_center)
        return found["balance"]["virtual_micros"] == 4 * USD

    await until(seen, "invoicing sees the hold")
    target = (await billing.top_up(token, business_center, target_micros=10 * USD)).json()
    assert target["amount_micros"] == 4 * USD, "W11, I2: target − the real balance"
    await billing.provider(target["invoice"]["id"], "pay")
    balance = await billing.wallet_balance_until(business_center, "real_micros", 10 * USD)
    assert balance["virtual_micros"] == 8 * USD


async def test_w12_the_wallets_threshold_signal_creates_one_prepayment_invoice_at_a_time(billing: Billing) -> None:
    business_center, [account] = await billing.business_center(aba_accounts=1)
    await billing.subscribe(business_center)
    invoice = (await billing.top_up(PLATFORM, business_center, amount_micros=10 * USD)).json()["invoice"]
    await billing.provider(invoice["id"], "pay")
    await billing.wallet_balance_until(business_center, "real_micros", 10 * USD)

    # Spend takes the virtual balance to 4 USD, below 50% of the last payment (10 USD).
    await billing.send_spends([billing.spend(account, 6 * USD)])
    found = await billing.invoices_until(business_center, lambda items: any(i["purpose"] == "prepayment" for i in items), "a prepayment invoice")
    prepayment = next(i for i in found if i["purpose"] == "prepayment")
    assert (prepayment["status"], prepayment["amount_micros"]) == ("open", 6 * USD), "back to the last payment"

    # The signal again (the wallet would send it after another crossing): still one open at a time.
    signal = PrepaymentThresholdCrossed(owner_id=business_center, currency="USD", virtual_micros=3 * USD, threshold_micros=5 * USD, last_payment_micros=10 * USD, crossed_at=billing.clock.now())
    envelope = encode(signal, key=business_center, trace_id="t")
    record = (envelope.key, envelope.value, list(envelope.headers))
    await produce(billing.stack.kafka_bootstrap_servers, billing.wallet_events_topic, [record])
    marker = (await billing.top_up(PLATFORM, business_center, amount_micros=USD)).json()["invoice"]
    await billing.invoices_until(business_center, lambda items: any(i["id"] == marker["id"] for i in items), "the marker")
    await until(lambda: _consumed(billing, signal.event_id), "the second signal consumed")
    rows = await billing.fetch(f"select id from {billing.invoicing_schema}.invoices where purpose = 'prepayment' and payer_id = $1", business_center)
    assert [row["id"] for row in rows] == [prepayment["id"]], "W12: at most one prepayment invoice open at a time"


async def _consumed(billing: Billing, event_id: str) -> bool:
    rows = await billing.fetch(f"select 1 from {billing.invoicing_schema}.processed_events where event_id = $1", event_id)
    return bool(rows)


async def test_c1_an_activation_shortfall_invoice_requested_twice_is_issued_once_and_paid_the_same_way(billing: Billing) -> None:
    business_center, _ = await billing.business_center()
    command = IssueInvoice(
        idempotency_key="campaign-1:shortfall:1", invoice_id=unique("shortfall"), owner_id=business_center, amount_micros=7 * USD,
        currency="USD", purpose="activation_shortfall", reference_id="campaign-1", description="Campaign Winter Sale: budget not covered",
        requested_by="campaign",
    )
    # As the campaign service sends it: signed by it (issue 12).
    signed = encoded(command, business_center, topic="invoicing.commands.v1")
    await produce(billing.stack.kafka_bootstrap_servers, "invoicing.commands.v1", [signed] * 2)
    found = await billing.invoices_until(business_center, lambda items: len(items) == 1, "the shortfall invoice")
    assert (found[0]["id"], found[0]["purpose"], found[0]["amount_micros"]) == (command.invoice_id, "activation_shortfall", 7 * USD)
    await billing.provider(command.invoice_id, "pay")
    await billing.wallet_balance_until(business_center, "real_micros", 7 * USD)
    received = typed(await billing.records(billing.wallet_events_topic, {business_center}, expect=2), "FundsReceived")
    assert [e["invoice_id"] for e in received] == [command.invoice_id], "the campaign service waits for this FundsReceived"
    assert len(await billing.invoices(business_center)) == 1

    # M2: a shortfall invoice in another currency than the owner's is dead-lettered with the reason.
    euros = command.model_copy(update={"invoice_id": unique("shortfall"), "currency": "EUR", "idempotency_key": "campaign-1:shortfall:2"})
    signed = encoded(euros, business_center, topic="invoicing.commands.v1")
    await produce(billing.stack.kafka_bootstrap_servers, "invoicing.commands.v1", [signed])
    [dead] = await billing.records("invoicing.commands.v1.dlq", {business_center}, expect=1)
    assert "currency mismatch" in dead.headers["dlq-reason"] and json.loads(dead.value or b"{}")["invoice_id"] == euros.invoice_id
    assert len(await billing.invoices(business_center)) == 1


async def test_i6_t1_day_close_with_a_negative_prepaid_source_issues_exactly_one_invoice_to_accounts_payable(billing: Billing) -> None:
    source = unique("fs")
    registered = await billing.call(billing.invoicing, "POST", "/v1/funding-sources", PLATFORM, {
        "id": source, "name": "Sales team", "kind": "prepaid_invoice", "currency": "USD",
        "low_balance_contacts": ["ops@acme.example", "cfo@acme.example"], "accounts_payable_contact": "ap@acme.example",
    })
    assert registered.status_code == 201, registered.text
    charge = {"charge_id": unique("adj"), "amount_micros": 7 * USD, "currency": "USD", "description": "Adjustment: final cost of send 42"}
    answer = await billing.call(billing.invoicing, "POST", f"/v1/funding-sources/{source}/charges", PLATFORM, charge, key="charge-1")
    assert (answer.status_code, answer.json()["balance_after_micros"]) == (201, -7 * USD), "I6: a prepaid source may go negative"
    repeat = await billing.call(billing.invoicing, "POST", f"/v1/funding-sources/{source}/charges", PLATFORM, charge, key="charge-1")
    assert repeat.json() == answer.json(), "M5"
    await billing.call(billing.invoicing, "POST", f"/v1/funding-sources/{source}/charges", PLATFORM, {**charge, "charge_id": unique("adj"), "amount_micros": 2 * USD})
    events = await billing.records("invoicing.events.v1", {source}, expect=6, settle_s=0.5)
    alerts = typed(events, "EmailRequested")
    assert sorted((e["template"], e["recipient_address"]) for e in alerts) == sorted(
        [("prepaid_source_negative", "ops@acme.example"), ("prepaid_source_negative", "cfo@acme.example")] * 2
    ), "the low-balance contacts are alerted at once, at each charge"
    assert alerts[0]["fields"] == {"funding_source_name": "Sales team", "balance": "USD -7.00"}

    # Nothing before the UTC day ends; at the close, one invoice for the remaining negative balance.
    billing.clock.set(datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC))
    assert await billing.service.jobs.run_day_closes() == []
    billing.clock.set(datetime(2026, 11, 22, 0, 0, 1, tzinfo=UTC))
    [invoice] = await billing.service.jobs.run_day_closes()
    assert (invoice.amount_micros, invoice.recipient_address, invoice.period_start.isoformat()) == (9 * USD, "ap@acme.example", "2026-11-21")
    assert await billing.service.jobs.run_day_closes() == [], "T1: a day closes once"
    billing.clock.advance(timedelta(days=1))
    assert await billing.service.jobs.run_day_closes() == [], "the open invoice already asks for the negative balance"
    issued = typed(await billing.records("invoicing.events.v1", {source}, expect=8, settle_s=0.5), "EmailRequested")
    assert [(e["template"], e["recipient_address"]) for e in issued if e["subject_id"] == invoice.id] == [("invoice_issued", "ap@acme.example")]

    # Paid, the source is back at zero, in the ledger.
    await billing.provider(invoice.id, "pay")
    source_read = (await billing.call(billing.invoicing, "GET", f"/v1/funding-sources/{source}", PLATFORM)).json()
    assert source_read["balance_micros"] == 0
    billing.clock.advance(timedelta(days=1))
    assert await billing.service.jobs.run_day_closes() == []


async def test_i6_a_credit_card_source_gets_one_card_payment_per_charge(billing: Billing) -> None:
    # Owner ids are unique across kinds (issue 12): a funding source cannot take a Business Center's id.
    business_center, _ = await billing.business_center()
    card = {"id": business_center, "name": "Card", "kind": "credit_card", "currency": "USD"}
    taken = await billing.call(billing.invoicing, "POST", "/v1/funding-sources", PLATFORM, card)
    assert (taken.status_code, taken.json()["error"]) == (409, "already_exists"), taken.text
    source = unique("card")
    await billing.call(billing.invoicing, "POST", "/v1/funding-sources", PLATFORM, {"id": source, "name": "Corporate card", "kind": "credit_card", "currency": "USD"})
    for amount in (2 * USD, 3 * USD):
        answer = await billing.call(billing.invoicing, "POST", f"/v1/funding-sources/{source}/charges", PLATFORM, {"charge_id": unique("c"), "amount_micros": amount, "currency": "USD", "description": "Send 7 adjustment"})
        assert answer.status_code == 201 and answer.json()["card_invoice_id"] is not None
    assert await billing.service.jobs.collect_card_payments() == 2
    assert await billing.service.jobs.collect_card_payments() == 0
    cards = await billing.fetch(f"select status, amount_micros from {billing.invoicing_schema}.invoices where payer_id = $1 order by amount_micros", source)
    assert [(row["status"], row["amount_micros"]) for row in cards] == [("paid", 2 * USD), ("paid", 3 * USD)]
    assert (await billing.call(billing.invoicing, "GET", f"/v1/funding-sources/{source}", PLATFORM)).json()["balance_micros"] == 0


async def test_i7_t1_one_invoice_per_month_for_the_spend_posted_in_it_for_monthly_invoicing_accounts(billing: Billing) -> None:
    business_center, [account] = await billing.business_center(monthly_accounts=1)

    async def known() -> bool:
        return bool(await billing.fetch(f"select 1 from {billing.invoicing_schema}.owners where owner_id = $1 and billing_option = 'monthly_invoicing'", account))

    await until(known, "the ad account known to invoicing")
    november, december = datetime(2026, 11, 21, 10, tzinfo=UTC), datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC)

    def posted(campaign: str, amount: int, when: datetime) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        event = SpendPosted(
            ad_account_id=account, campaign_id=campaign, business_center_id=business_center, funding_mode="drawdown", amount_micros=amount,
            currency="USD", spend_event_count=3, first_occurred_at=when, last_occurred_at=when, posted_at=when,
        )
        envelope = encode(event, key=account, trace_id="t")
        return (envelope.key, envelope.value, list(envelope.headers))

    first = posted("c-1", 4 * USD, november)
    await produce(billing.stack.kafka_bootstrap_servers, "spend.posted.v1", [first, first, posted("c-2", 2 * USD, november), posted("c-1", -1 * USD, november), posted("c-1", 5 * USD, december)])

    async def summed() -> bool:
        rows = await billing.fetch(f"select sum(event_count) as n from {billing.invoicing_schema}.monthly_spend where ad_account_id = $1", account)
        return rows[0]["n"] == 12

    await until(summed, "the posted spend summed")
    billing.clock.set(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert await billing.service.jobs.run_month_closes() == []
    billing.clock.set(datetime(2026, 12, 1, 0, 1, tzinfo=UTC))
    # Other environments' accounts on the shared topics may be invoiced too; this account once.
    [invoice] = [item for item in await billing.service.jobs.run_month_closes() if item.payer_id == account]
    assert (invoice.payer_id, invoice.amount_micros, invoice.period_start.isoformat()) == (account, 5 * USD, "2026-11-01"), "the duplicate counted once; December not in it"
    assert [line.amount_micros for line in invoice.lines] == [3 * USD, 2 * USD], "one line per campaign"
    assert await billing.service.jobs.run_month_closes() == [], "one invoice per month"

    # Spend posted in November that arrives after November closed goes into December's invoice.
    await produce(billing.stack.kafka_bootstrap_servers, "spend.posted.v1", [posted("c-3", USD, november)])

    async def late() -> bool:
        rows = await billing.fetch(f"select month from {billing.invoicing_schema}.monthly_spend where ad_account_id = $1 and campaign_id = 'c-3'", account)
        return [row["month"].isoformat() for row in rows] == ["2026-12-01"]

    await until(late, "the late spend moved to December")
    billing.clock.set(datetime(2027, 1, 1, 0, 1, tzinfo=UTC))
    [december_invoice] = [item for item in await billing.service.jobs.run_month_closes() if item.payer_id == account]
    assert (december_invoice.amount_micros, december_invoice.period_start.isoformat()) == (6 * USD, "2026-12-01")


async def test_i5_the_same_payment_notified_many_times_at_once_pays_the_invoice_once(billing: Billing) -> None:
    business_center, _ = await billing.business_center()
    await billing.subscribe(business_center)
    invoice = (await billing.top_up(PLATFORM, business_center, amount_micros=2 * USD)).json()["invoice"]
    stamp = int(billing.clock.now().timestamp())

    def signed(event_id: str) -> tuple[bytes, str]:
        body = json.dumps({"id": event_id, "type": "payment.succeeded", "payment_id": "pay_race", "invoice_id": invoice["id"], "amount_micros": 2 * USD, "currency": "USD"}).encode()
        return body, sign(SECRET, stamp, body)

    deliveries = [signed(f"evt_race_{n % 3}") for n in range(9)]
    answers = await asyncio.gather(*(billing.invoicing.post("/v1/payments/webhook", content=body, headers={SIGNATURE_HEADER: header}) for body, header in deliveries))
    effects = sorted(answer.json()["effect"] for answer in answers)
    assert effects == sorted(["paid"] + ["already_paid"] * 2 + ["duplicate"] * 6), effects
    await billing.wallet_balance_until(business_center, "real_micros", 2 * USD)
    events = await billing.records("invoicing.events.v1", {business_center}, expect=2)
    assert len(typed(events, "InvoicePaid")) == 1
