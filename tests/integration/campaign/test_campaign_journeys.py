"""Campaigns on the real stack (rules C1-C5, W5, W9, W10, S3, T1): the wallet and the campaign
service run in-process on real Kafka and PostgreSQL, share one ManualClock, and talk only
through the topics. The test plays the two services built in parallel: it pays the shortfall
invoice by publishing the `InvoicePaid` the invoicing service would publish, and it publishes
the `SpendPosted` the spend consumer would. Deadlines are acted on by calling the service's
deadline job after moving the clock; nothing sleeps for 48 hours. People and their roles (W9) come
from the platform's one identity, as the world's `TestIdentity` publishes them; the campaign
service verifies their session tokens against its replica, like any caller."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from adledger_auth import tokens
from adledger_campaign.config import Settings
from adledger_campaign.inject import Service, wire
from adledger_contracts.external import DeliveryDecided
from adledger_contracts.spending import SpendPosted
from adledger_libs.events import Message, encode

from ..conftest import Stack, unique
from ..identity_world import PLATFORM, TestIdentity
from ..kafka_io import produce, read_all, start_at_end
from ..waits import free_port as _free_port
from ..wallet.test_wallet_journey import USD, RunningWallet, wallet  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
H48 = timedelta(hours=48)
#: The journeys move the world's clock across days and a month end (C3, C4): the test's session
#: tokens live longer than that, so an expiry never interrupts one (expiry has its own test).
SESSION_LIFETIME = timedelta(days=90)


@dataclass
class Instance:
    service: Service
    stop: asyncio.Event
    serving: asyncio.Future[None] | None

    async def close(self) -> None:
        self.stop.set()
        if self.serving is not None:
            await asyncio.gather(self.serving, return_exceptions=True)
        await self.service.runtime.close()


@dataclass
class CampaignStack:
    stack: Stack
    wallet: RunningWallet
    identity: TestIdentity
    settings: Settings
    client: httpx.AsyncClient
    instance: Instance
    wallet_token: str = ""
    token: str = ""
    bc: str = ""
    account: str = ""
    extra: list[Instance] = field(default_factory=list)

    @property
    def spend_posted_topic(self) -> str:
        """Where the service reads posted spend (a platform test gives its own)."""
        return self.settings.spend_posted_topic

    @property
    def delivery_control_topic(self) -> str:
        return self.settings.delivery_control_topic

    async def start_instance(self, *, serve: bool = True, fresh: bool = False) -> Instance:
        service = wire(self.settings, self.wallet.clock)
        await service.runtime.start()
        if fresh:
            consumed = [self.settings.wallet_events_topic, self.spend_posted_topic, self.delivery_control_topic]
            await start_at_end(self.stack.kafka_bootstrap_servers, self.stack.database_url, self.settings.schema, self.settings.consumer_group, consumed)
        instance = Instance(service, asyncio.Event(), None)
        if serve:
            await self.serve(instance)
        return instance

    async def serve(self, instance: Instance) -> None:
        instance.serving = asyncio.ensure_future(instance.service.runtime.serve(instance.stop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            try:
                if (await self.client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert loop.time() < deadline, "campaign did not become healthy"
            await asyncio.sleep(0.1)

    async def command(self, method: str, path: str, token: str, body: dict[str, Any] | None = None, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key or unique("k")}
        return await self.client.request(method, path, json=body, headers=headers)

    async def person(self, name: str, business_center_id: str | None = None, *roles: str) -> tuple[str, str]:
        """A person of the platform's identity with `roles` in the Business Center, known to the
        campaign service's and the wallet's replicas: (user id, session token)."""
        replicas = [self.instance.service.runtime.pool, self.wallet.runtime.pool]
        user_id = await self.identity.user(unique(name.split()[0].lower()), name=name, replicas=replicas)
        if business_center_id is not None and roles:
            await self.identity.grant(business_center_id, user_id, *roles, replicas=replicas)
        return user_id, self.identity.session(user_id, lifetime=SESSION_LIFETIME)

    async def sign_in_operator(self, business_center_id: str) -> None:
        """A new person of the platform, made an Operator of the Business Center; their token is used from now on."""
        _, self.token = await self.person("Olga Operator", business_center_id, "operator")

    async def campaign(self, campaign_id: str) -> dict[str, Any]:
        answer = await self.client.get(f"/v1/campaigns/{campaign_id}", headers={"Authorization": f"Bearer {self.token}"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def campaign_until(self, campaign_id: str, **expected: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            found = await self.campaign(campaign_id)
            if all(found.get(name) == value for name, value in expected.items()):
                return found
            assert loop.time() < deadline, f"campaign {campaign_id} is {found}, expected {expected}"
            await asyncio.sleep(0.1)

    async def create(self, budget_micros: int, ends_at: datetime, funding_mode: str = "prepaid") -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        body = {"ad_account_id": self.account, "name": "Winter sale", "funding_mode": funding_mode, "budget_micros": budget_micros, "ends_at": ends_at.isoformat()}
        while True:
            answer = await self.command("POST", "/v1/campaigns", self.token, body)
            if answer.status_code != 404:  # until the wallet's AdAccountOpened arrived
                break
            assert loop.time() < deadline, answer.text
            await asyncio.sleep(0.1)
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "draft"
        return str(answer.json()["id"])

    async def balance(self, field_name: str, expected: int) -> dict[str, object]:
        return await self.wallet.balance_until(self.bc, self.wallet_token, field_name, expected)

    async def publish(self, topic: str, key: str, *messages: Message) -> None:
        items = []
        for message in messages:
            envelope = encode(message, key=key, trace_id="trace-campaign-test")
            items.append((envelope.key, envelope.value, list(envelope.headers)))
        await produce(self.stack.kafka_bootstrap_servers, topic, items)

    def spend(self, campaign_id: str, from_booking_micros: int, amount_micros: int | None = None) -> SpendPosted:
        now = self.wallet.clock.now()
        return SpendPosted(
            ad_account_id=self.account, campaign_id=campaign_id, business_center_id=self.bc, funding_mode="prepaid",
            amount_micros=from_booking_micros if amount_micros is None else amount_micros, from_booking_micros=from_booking_micros,
            currency="USD", spend_event_count=3, first_occurred_at=now, last_occurred_at=now, posted_at=now,
        )

    async def records(self, topic: str, key: str, types: set[str], count: int) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            found = await read_all(self.stack.kafka_bootstrap_servers, topic, expect=0, settle_s=0.3)
            mine = [
                {"type": r.headers["event-type"], **json.loads(r.value or b"{}")}
                for r in found if r.key == key.encode() and r.headers.get("event-type") in types
            ]
            if len(mine) >= count:
                return mine
            assert loop.time() < deadline, f"got {mine}"
            await asyncio.sleep(0.2)

    async def snapshots(self, campaign_id: str, count: int) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            events = [e for e in await self.records("campaign.events.v1", self.account, {"CampaignChanged"}, 0) if e["campaign_id"] == campaign_id]
            if len(events) >= count:
                return events
            assert loop.time() < deadline, f"got {events}"
            await asyncio.sleep(0.2)


@asynccontextmanager
async def campaign_service(
    stack: Stack, wallet: RunningWallet, *, spend_posted_topic: str = "spend.posted.v1", delivery_control_topic: str = "delivery.control.v1",  # noqa: F811
    identity: TestIdentity | None = None,
) -> AsyncIterator[CampaignStack]:
    """The campaign service running beside `wallet` on its clock and its topics, its positions on
    the shared topics at their end, its callers from the wallet's identity (one identity for the
    world) unless another is given; its schema is dropped afterwards."""
    identity = identity or wallet.identity
    port = _free_port()
    settings = Settings(
        database_url=stack.database_url,
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_campaign"),
        http_port=port,
        identity_events_topic=identity.topic,
        wallet_events_topic=wallet.events_topic,
        wallet_commands_topic=wallet.commands_topic,
        spend_posted_topic=spend_posted_topic,
        delivery_control_topic=delivery_control_topic,
        kafka_consumer_group=unique("campaign-group"),
        outbox_poll_interval_ms=100,
        # Tests run the deadline job themselves after moving the ManualClock (T1).
        deadline_poll_interval_ms=3_600_000,
    )
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
    running = CampaignStack(stack, wallet, identity, settings, client, instance=None)  # type: ignore[arg-type]
    try:
        running.instance = await running.start_instance(fresh=True)
        await identity.replicated(running.instance.service.runtime.pool)
        yield running
    finally:
        for instance in [running.instance, *running.extra]:
            if instance is not None:
                await instance.close()
        await client.aclose()
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.execute(f"drop schema if exists {settings.schema} cascade")
        finally:
            await conn.close()


@pytest_asyncio.fixture
async def campaigns(stack: Stack, wallet: RunningWallet) -> AsyncIterator[CampaignStack]:  # noqa: F811
    async with campaign_service(stack, wallet) as running:
        admin, running.wallet_token = await running.person("Ada Admin")
        running.bc, running.account = unique("bc"), unique("acc")
        answer = await wallet.open_business_center(running.bc, admin)
        assert answer.status_code == 201, answer.text
        answer = await wallet.command(
            "POST", f"/v1/business-centers/{running.bc}/ad-accounts", running.wallet_token,
            {"id": running.account, "name": "Acme auction", "type": "auction", "billing_option": "monthly_invoicing"},
        )
        assert answer.status_code == 201, answer.text
        await running.sign_in_operator(running.bc)
        yield running


async def test_c1_c2_c3_c5_w5_prepaid_journey_invoice_paid_active_spend_reduce_end_credit_48_hours_later(campaigns: CampaignStack) -> None:
    stack, running_wallet = campaigns, campaigns.wallet
    # W5, W7: with ABA the account draws on the Business Center's cash, and Budget Sync gives it a cap.
    answer = await running_wallet.command("POST", f"/v1/business-centers/{stack.bc}/aba", stack.wallet_token)
    assert answer.status_code == 200, answer.text
    await running_wallet.pay(unique("inv"), stack.bc, 50 * USD)
    await stack.balance("real_micros", 50 * USD)
    caps = await stack.records("campaign.events.v1", stack.account, {"AdAccountBudgetCapChanged"}, 1)
    assert (caps[0]["source"], caps[0]["kind"], caps[0]["amount_micros"], caps[0]["version"]) == ("budget_sync", "monthly", 0, 1), "W5"

    ends_at = running_wallet.clock.now() + timedelta(days=3)
    campaign_id = await stack.create(100 * USD, ends_at)
    activated = await stack.command("POST", f"/v1/campaigns/{campaign_id}/activate", stack.token)
    assert activated.status_code == 200, activated.text

    # C1: half the budget is there: it is held, the other half is invoiced, the campaign waits.
    waiting = await stack.campaign_until(campaign_id, status="awaiting_payment", booked_micros=50 * USD)
    assert waiting["payer_owner_id"] == stack.bc, "W7: an ABA account's booking is held on the BC's cash"
    balance = await stack.balance("virtual_micros", 0)
    assert balance["real_micros"] == 50 * USD
    [invoice] = await stack.records("invoicing.commands.v1", stack.bc, {"IssueInvoice"}, 1)
    assert (invoice["invoice_id"], invoice["amount_micros"], invoice["purpose"], invoice["reference_id"]) == (
        waiting["open_invoice_id"], 50 * USD, "activation_shortfall", campaign_id,
    )

    # The invoice is paid: the wallet credits it, the campaign holds the rest and is active.
    await running_wallet.pay(invoice["invoice_id"], stack.bc, 50 * USD)
    active = await stack.campaign_until(campaign_id, status="active", booked_micros=100 * USD)
    assert active["open_invoice_id"] is None
    balance = await stack.balance("real_micros", 100 * USD)
    assert balance["virtual_micros"] == 0

    # Spend delivered from the booking (as the spend consumer posts it), counted once.
    spend = stack.spend(campaign_id, 30 * USD)
    await stack.publish("spend.posted.v1", stack.account, spend, spend)
    await stack.campaign_until(campaign_id, delivered_micros=30 * USD)

    # C2: a lower budget gives the difference back at once.
    reduced = await stack.command("PUT", f"/v1/campaigns/{campaign_id}/budget", stack.token, {"budget_micros": 60 * USD})
    assert reduced.status_code == 200 and reduced.json()["booked_micros"] == 60 * USD, reduced.text
    balance = await stack.balance("virtual_micros", 40 * USD)
    assert balance["real_micros"] == 100 * USD
    await stack.campaign_until(campaign_id, delivered_micros=30 * USD, booked_micros=60 * USD)
    below = await stack.command("PUT", f"/v1/campaigns/{campaign_id}/budget", stack.token, {"budget_micros": 20 * USD})
    assert (below.status_code, below.json()["error"]) == (422, "budget_below_minimum"), "not below what was delivered"

    # C3: the end, then 48 hours later the underdelivery (60 − 30 > 1 unit) is credited back.
    running_wallet.clock.set(ends_at)
    deadlines = stack.instance.service.deadlines
    assert await deadlines.run() == 1
    await stack.campaign_until(campaign_id, status="ended", booked_micros=60 * USD)
    running_wallet.clock.advance(H48 - timedelta(seconds=1))
    assert await deadlines.run() == 0, "not before 48 hours"
    assert (await running_wallet.get(f"/v1/balances/{stack.bc}", stack.wallet_token)).json()["virtual_micros"] == 40 * USD
    running_wallet.clock.advance(timedelta(seconds=1))
    assert await deadlines.run() == 1
    assert await deadlines.run() == 0, "exactly once"
    balance = await stack.balance("real_micros", 70 * USD)
    assert balance["virtual_micros"] == 70 * USD, "30 delivered went to the platform; 30 came back"
    settled = await stack.campaign_until(campaign_id, settled=True, booked_micros=0, credited_micros=30 * USD)
    assert {hold["state"] for hold in settled["holds"]} == {"settled", "released"}

    # C5: every change is a versioned snapshot on campaign.events.v1.
    events = await stack.snapshots(campaign_id, 6)
    assert [(e["status"], e["booked_micros"], e["budget_micros"]) for e in events] == [
        ("draft", 0, 100 * USD), ("awaiting_payment", 50 * USD, 100 * USD), ("active", 100 * USD, 100 * USD),
        ("active", 60 * USD, 60 * USD), ("ended", 60 * USD, 60 * USD), ("ended", 0, 60 * USD),
    ]
    assert [e["version"] for e in events] == list(range(1, 7))


async def test_c4_t1_a_paused_campaign_is_credited_at_the_end_of_the_month_once_across_a_restart(campaigns: CampaignStack) -> None:
    stack, running_wallet = campaigns, campaigns.wallet
    await running_wallet.pay(unique("inv"), stack.account, 20 * USD)
    await running_wallet.balance_until(stack.account, stack.wallet_token, "real_micros", 20 * USD)
    ends_at = running_wallet.clock.now() + timedelta(days=1)
    campaign_id = await stack.create(10 * USD, ends_at)
    assert (await stack.command("POST", f"/v1/campaigns/{campaign_id}/activate", stack.token)).status_code == 200
    active = await stack.campaign_until(campaign_id, status="active", booked_micros=10 * USD)
    assert active["payer_owner_id"] == stack.account, "a manual account's booking is held on its own cash"
    await stack.publish("spend.posted.v1", stack.account, stack.spend(campaign_id, 4 * USD))
    await stack.campaign_until(campaign_id, delivered_micros=4 * USD)
    paused = await stack.command("POST", f"/v1/campaigns/{campaign_id}/pause", stack.token)
    assert (paused.status_code, paused.json()["status"], paused.json()["pause_cause"]) == (200, "paused", "user")

    running_wallet.clock.set(ends_at)
    assert await stack.instance.service.deadlines.run() == 1
    await stack.campaign_until(campaign_id, status="ended")
    # C4: not 48 hours after the end, but at the end of that month (1 December 00:00 UTC).
    running_wallet.clock.advance(H48)
    assert await stack.instance.service.deadlines.run() == 0

    # The service is down across the deadline, and comes back as two instances (T1, exactly once).
    await stack.instance.close()
    running_wallet.clock.set(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    stack.instance = await stack.start_instance(serve=False)
    second = await stack.start_instance(serve=False)
    stack.extra.append(second)
    first_count, second_count = await asyncio.gather(stack.instance.service.deadlines.run(), second.service.deadlines.run())
    assert first_count + second_count == 1
    assert await stack.instance.service.deadlines.run() == 0
    await stack.serve(stack.instance)
    balance = await running_wallet.balance_until(stack.account, stack.wallet_token, "real_micros", 16 * USD)
    assert balance["virtual_micros"] == 16 * USD, "4 delivered posted, the unused 6 credited"
    await stack.campaign_until(campaign_id, settled=True, credited_micros=6 * USD)


async def test_c5_s3_pauses_from_delivery_control_and_by_hand_and_the_typed_refusals(campaigns: CampaignStack) -> None:
    stack, running_wallet = campaigns, campaigns.wallet
    await running_wallet.pay(unique("inv"), stack.account, 5 * USD)
    await running_wallet.balance_until(stack.account, stack.wallet_token, "real_micros", 5 * USD)
    campaign_id = await stack.create(5 * USD, running_wallet.clock.now() + timedelta(days=5))
    assert (await stack.command("POST", f"/v1/campaigns/{campaign_id}/pause", stack.token)).json()["error"] == "campaign_state"
    await stack.command("POST", f"/v1/campaigns/{campaign_id}/activate", stack.token)
    await stack.campaign_until(campaign_id, status="active", booked_micros=5 * USD)

    def decided(action: str, reason: str) -> DeliveryDecided:
        return DeliveryDecided(
            ad_account_id=stack.account, campaign_id=campaign_id, action=action, reason=reason,  # type: ignore[arg-type]
            business_center_id=None, decided_at=running_wallet.clock.now(), cause_event_id=None,
        )

    await stack.publish("delivery.control.v1", stack.account, decided("pause", "campaign_budget_reached"))
    await stack.campaign_until(campaign_id, status="paused", pause_cause="budget")
    refused = await stack.command("POST", f"/v1/campaigns/{campaign_id}/resume", stack.token)
    assert (refused.status_code, refused.json()["error"]) == (409, "campaign_state"), "a budget pause is not a user's to lift"
    await stack.publish("delivery.control.v1", stack.account, decided("resume", "funds_restored"))
    await stack.campaign_until(campaign_id, status="active", pause_cause=None)

    key = unique("pause")
    first = await stack.command("POST", f"/v1/campaigns/{campaign_id}/pause", stack.token, key=key)
    again = await stack.command("POST", f"/v1/campaigns/{campaign_id}/pause", stack.token, key=key)
    assert first.status_code == 200 and again.json() == first.json(), "M5: the same key answers the first answer"
    assert (await stack.command("POST", f"/v1/campaigns/{campaign_id}/resume", stack.token)).json()["status"] == "active"
    _, stranger = await stack.person("Sam of another BC", unique("bc"), "admin")
    missing = unique("campaign")
    for method, suffix in (("GET", ""), ("POST", "/pause")):
        # W9: no role here: nothing to read or change, and not even whether it exists.
        hidden = await stack.command(method, f"/v1/campaigns/{campaign_id}{suffix}", stranger)
        unknown = await stack.command(method, f"/v1/campaigns/{missing}{suffix}", stranger)
        assert (hidden.status_code, hidden.json()["error"]) == (404, "not_found"), hidden.text
        assert hidden.json() == json.loads(unknown.text.replace(missing, campaign_id)), "W9: the same answer as none"
    assert (await stack.campaign(campaign_id))["status"] == "active", "the stranger changed nothing"
    operator_read = await stack.command("GET", f"/v1/campaigns/{campaign_id}", PLATFORM)
    assert operator_read.status_code == 200, "the platform operator's API key sees every Business Center"
    too_low = await stack.command("PUT", f"/v1/campaigns/{campaign_id}/budget", stack.token, {"budget_micros": USD - 1})
    assert (too_low.status_code, too_low.json()["error"]) == (422, "budget_below_minimum")

    events = await stack.snapshots(campaign_id, 6)
    assert [e["version"] for e in events] == list(range(1, 7))
    assert [(e["status"], e["pause_cause"], e["previous_status"]) for e in events[1:]] == [
        ("active", None, "draft"), ("paused", "budget", "active"), ("active", None, "paused"),
        ("paused", "user", "active"), ("active", None, "paused"),
    ]


async def test_w9_an_ad_accounts_campaigns_are_listed_to_its_business_centers_roles_only(campaigns: CampaignStack) -> None:
    stack = campaigns
    ends_at = stack.wallet.clock.now() + timedelta(days=5)
    first, second = [await stack.create(5 * USD, ends_at, funding_mode=mode) for mode in ("drawdown", "prepaid")]
    path = f"/v1/ad-accounts/{stack.account}/campaigns"
    _, analyst = await stack.person("Ann Analyst", stack.bc, "analyst")
    listed = await stack.client.get(path, headers={"Authorization": f"Bearer {analyst}"})
    assert listed.status_code == 200, listed.text
    assert [(item["id"], item["funding_mode"], item["status"]) for item in listed.json()] == sorted(
        [(first, "drawdown", "draft"), (second, "prepaid", "draft")]
    ), "any role reads them (W9)"
    _, outsider = await stack.person("Oscar Outsider")
    hidden = await stack.client.get(path, headers={"Authorization": f"Bearer {outsider}"})
    assert (hidden.status_code, hidden.json()["error"]) == (404, "not_found"), "no role: as if it did not exist"
    unknown = await stack.client.get("/v1/ad-accounts/no-such-account/campaigns", headers={"Authorization": f"Bearer {analyst}"})
    assert unknown.status_code == 404


async def test_w9_w10_caps_only_finance_manager_or_admin_at_most_ten_a_utc_day_and_the_wallet_keeps_a_copy(campaigns: CampaignStack) -> None:
    stack, running_wallet = campaigns, campaigns.wallet
    path = f"/v1/ad-accounts/{stack.account}/budget-cap"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while (answer := await stack.command("PUT", path, stack.token, {"kind": "daily", "amount_micros": USD})).status_code == 404:
        assert loop.time() < deadline, answer.text
        await asyncio.sleep(0.1)
    assert (answer.status_code, answer.json()["error"]) == (403, "permission_denied"), "W9: an Operator may not"
    # Who asks is checked before what is asked (found by the isolation matrix): an Operator's cap
    # with values it would refuse is still a 403, not the values' 422.
    invalid = await stack.command("PUT", path, stack.token, {"kind": "daily"})
    assert (invalid.status_code, invalid.json()["error"]) == (403, "permission_denied"), invalid.text

    _, token = await stack.person("Fay Finance", stack.bc, "finance_manager")
    for amount in range(1, 11):
        answer = await stack.command("PUT", path, token, {"kind": "daily", "amount_micros": amount * USD})
        assert answer.status_code == 200 and answer.json()["version"] == amount, answer.text
        assert answer.json()["changes_left_today"] == 10 - amount, "W10: the changes left on this UTC day"
    same = await stack.command("PUT", path, token, {"kind": "daily", "amount_micros": 10 * USD})
    assert same.status_code == 200 and same.json()["changed"] is False, "the cap it already has is no change"
    assert same.json()["changes_left_today"] == 0
    eleventh = await stack.command("PUT", path, token, {"kind": "monthly", "amount_micros": 50 * USD})
    assert (eleventh.status_code, eleventh.json()["error"]) == (429, "too_many_cap_changes"), "W10"
    running_wallet.clock.set(datetime(2026, 11, 22, tzinfo=UTC))
    next_day = await stack.command("PUT", path, token, {"kind": "custom", "amount_micros": 50 * USD, "starts_on": "2026-11-22", "ends_on": "2026-11-30"})
    assert next_day.status_code == 200 and next_day.json()["version"] == 11, "W10: the count starts again at 00:00 UTC"
    read = await stack.command("GET", path, token)
    assert (read.status_code, read.json()["changes_left_today"]) == (200, 9), "read: the changes left today (W10)"

    caps = await stack.records("campaign.events.v1", stack.account, {"AdAccountBudgetCapChanged"}, 11)
    assert [c["version"] for c in caps] == list(range(1, 12))
    deadline = loop.time() + 30
    while True:
        row = await running_wallet.runtime.pool.fetchrow("select budget_kind, budget_micros, budget_version from ad_accounts where id = $1", stack.account)
        if row["budget_version"] == 11:
            break
        assert loop.time() < deadline, dict(row)
        await asyncio.sleep(0.1)
    assert (row["budget_kind"], row["budget_micros"]) == ("custom", 50 * USD), "the wallet keeps the cap for Budget Sync (W5)"


async def test_w9_m1_hostile_edges_bad_ids_huge_amounts_huge_bodies_and_bad_tokens_are_typed_4xx_and_change_nothing(
    campaigns: CampaignStack,
) -> None:
    stack = campaigns
    campaign_id = await stack.create(5 * USD, stack.wallet.clock.now() + timedelta(days=5), funding_mode="drawdown")
    schema = stack.settings.schema
    pool = stack.instance.service.runtime.pool

    async def state() -> tuple[object, ...]:
        return (
            await pool.fetchval(f"select count(*) from {schema}.campaigns"),
            await pool.fetchval(f"select count(*) from {schema}.budget_caps"),
            await pool.fetchval(f"select count(*) from {schema}.cap_changes"),
            await pool.fetchval(f"select count(*) from {schema}.idempotent_requests"),
            await stack.campaign(campaign_id),
        )

    before = await state()
    create = {"ad_account_id": stack.account, "name": "Edge", "funding_mode": "drawdown", "budget_micros": 5 * USD}
    campaign_path, cap_path = f"/v1/campaigns/{campaign_id}", f"/v1/ad-accounts/{stack.account}/budget-cap"
    user_id, _ = await stack.person("Olga Operator", stack.bc, "operator")
    now = stack.wallet.clock.now()
    forged_key = tokens.new_signing_key()

    def claims(issued_at: datetime, expires_at: datetime) -> tokens.SessionClaims:
        return tokens.SessionClaims(user_id=user_id, session_id=unique("s"), issued_at=issued_at, expires_at=expires_at)

    valid = stack.identity.session(user_id, lifetime=SESSION_LIFETIME)
    header, _, signature = valid.split(".")
    other_payload = stack.identity.session("platform", lifetime=SESSION_LIFETIME).split(".")[1]
    revoked = stack.identity.session(user_id, lifetime=SESSION_LIFETIME)
    await stack.identity.end_session(revoked, user_id, replicas=[pool])
    bad_tokens = {
        "signed with another key under the world's key id": tokens.sign_session(
            forged_key, stack.identity.key_id, claims(now, now + timedelta(hours=1))),
        "a valid token whose claims were changed (made the platform operator)": f"{header}.{other_payload}.{signature}",
        "signed by a key the platform never published": tokens.sign_session(
            forged_key, "unknown-key", claims(now, now + timedelta(hours=1))),
        "expired": tokens.sign_session(
            stack.identity.key, stack.identity.key_id, claims(now - timedelta(hours=2), now - timedelta(hours=1))),
        "revoked (signed out)": revoked,
        "not a token": "adk_nothing_like_a_key",
        "too long": "x" * 5000,
    }
    for what, token in bad_tokens.items():
        for method, path, body in (("GET", campaign_path, None), ("POST", "/v1/campaigns", create),
                                   ("PUT", cap_path, {"kind": "unlimited"})):
            answer = await stack.command(method, path, token, body)
            assert (answer.status_code, answer.json()["error"]) == (401, "unauthenticated"), (what, answer.text)
    missing = await stack.client.post("/v1/campaigns", json=create, headers={"Idempotency-Key": unique("k")})
    assert (missing.status_code, missing.json()["error"]) == (401, "unauthenticated"), "no token"

    maximum = 2**63 - 1
    refused: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
        # Amounts the ledger cannot hold, floats, strings, negative, zero (M1).
        ("POST", "/v1/campaigns", {**create, "budget_micros": maximum + 1}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "budget_micros": 10**21}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "budget_micros": 5.5}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "budget_micros": "5000000"}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "budget_micros": 0}, 422, "invalid_request"),
        ("PUT", campaign_path + "/budget", {"budget_micros": maximum + 1}, 422, "invalid_request"),
        ("PUT", campaign_path + "/budget", {"budget_micros": -USD}, 422, "invalid_request"),
        ("PUT", cap_path, {"kind": "daily", "amount_micros": maximum + 1}, 422, "invalid_request"),
        ("PUT", cap_path, {"kind": "daily", "amount_micros": -1}, 422, "invalid_request"),
        # Ids and texts: NUL and control characters, too long, unknown fields, far-off times.
        ("POST", "/v1/campaigns", {**create, "ad_account_id": "acc\u0000x"}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "ad_account_id": "a" * 129}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "name": "Winter\u0000sale"}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "name": "x" * 201}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "owner": "me"}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "ends_at": "9999-12-31T23:59:59Z"}, 422, "invalid_request"),
        ("POST", "/v1/campaigns", {**create, "ends_at": "2026-12-01T00:00:00"}, 422, "invalid_request"),
        ("POST", "/v1/campaigns/%00x/pause", None, 422, "invalid_request"),
        ("POST", "/v1/campaigns/x%1Bx/pause", None, 422, "invalid_request"),
        ("GET", "/v1/campaigns/" + "c" * 129, None, 422, "invalid_request"),
        ("PUT", "/v1/ad-accounts/acc%07/budget-cap", {"kind": "unlimited"}, 422, "invalid_request"),
        # Well-formed but refused by the rules (W10, C2): typed, nothing changed.
        # This caller is an Operator, who may not set caps (W9): who asks is checked before the cap's values.
        ("PUT", cap_path, {"kind": "unlimited", "amount_micros": USD}, 403, "permission_denied"),
        ("PUT", cap_path, {"kind": "custom", "amount_micros": USD}, 403, "permission_denied"),
        ("PUT", campaign_path + "/budget", {"budget_micros": USD - 1}, 422, "budget_below_minimum"),
        ("POST", campaign_path + "/resume", None, 409, "campaign_state"),
    ]
    for method, path, body, status, error in refused:
        answer = await stack.command(method, path, stack.token, body)
        assert (answer.status_code, answer.json().get("error")) == (status, error), (method, path, body, answer.text)
        assert answer.json()["reason"], "every refusal says why"
    no_key = await stack.client.post(campaign_path + "/pause", headers={"Authorization": f"Bearer {stack.token}"})
    assert (no_key.status_code, no_key.json()["error"]) == (400, "idempotency_key_required"), "M5"

    # A huge body is refused before it is read, with a valid token or without one.
    huge = json.dumps({**create, "name": "x" * 100_000})
    for headers in ({"Authorization": f"Bearer {stack.token}"}, {}):
        answer = await stack.client.post("/v1/campaigns", content=huge, headers={
            **headers, "Idempotency-Key": unique("k"), "Content-Type": "application/json",
        })
        assert (answer.status_code, answer.json()["error"]) == (413, "payload_too_large"), answer.text

    assert await state() == before, "no refused request changed anything"
