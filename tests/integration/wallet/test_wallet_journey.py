"""The wallet on the real stack: HTTP → PostgreSQL → Kafka (`balances.v1`, `wallet.events.v1`),
and paid invoices from Kafka applied exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
import pytest_asyncio

from adledger_contracts.wallet import InvoicePaid
from adledger_libs.clock import ManualClock
from adledger_libs.runtime import ServiceRuntime
from adledger_wallet.config import Settings
from adledger_wallet.inject import build

from ..conftest import Stack, TopicFactory, unique
from ..identity_world import PLATFORM, TestIdentity
from ..kafka_io import encoded, produce, read_all, start_at_end
from ..waits import free_port as _free_port

pytestmark = pytest.mark.integration
USD = 1_000_000


@dataclass
class RunningWallet:
    runtime: ServiceRuntime
    client: httpx.AsyncClient
    clock: ManualClock
    bootstrap: str
    identity: TestIdentity
    commands_topic: str
    events_topic: str
    keys: int = 0

    def key(self) -> str:
        self.keys += 1
        return f"key-{self.keys}-{unique('k')}"

    async def command(self, method: str, path: str, token: str, body: dict[str, object] | None = None, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key or self.key()}
        return await self.client.request(method, path, json=body, headers=headers)

    async def get(self, path: str, token: str) -> httpx.Response:
        return await self.client.get(path, headers={"Authorization": f"Bearer {token}"})

    async def user(self, name: str) -> tuple[str, str]:
        """A person of the platform's identity, known to the wallet: (user id, session token)."""
        person = await self.identity.person(name, replicas=[self.runtime.pool])
        return person.user_id, person.token

    async def grant(self, business_center_id: str, user_id: str, *roles: str) -> None:
        await self.identity.grant(business_center_id, user_id, *roles, replicas=[self.runtime.pool])

    async def open_business_center(self, business_center_id: str, admin_user_id: str, currency: str = "USD") -> httpx.Response:
        """As the platform operator; the identity service then makes the admin its Admin (here: the world's identity)."""
        body = {"id": business_center_id, "name": "Acme", "currency": currency, "admin_user_id": admin_user_id}
        answer = await self.command("POST", "/v1/business-centers", PLATFORM, body)
        if answer.status_code == 201:
            await self.grant(business_center_id, admin_user_id, "admin")
        return answer

    async def pay(self, invoice_id: str, owner_id: str, amount_micros: int, currency: str = "USD", *, copies: int = 1) -> InvoicePaid:
        event = InvoicePaid(invoice_id=invoice_id, owner_id=owner_id, amount_micros=amount_micros, currency=currency, paid_at=self.clock.now())
        record = encoded(event, owner_id, topic="invoicing.events.v1", trace_id="trace-payment")
        await produce(self.bootstrap, "invoicing.events.v1", [record] * copies)
        return event

    async def balance_until(self, owner_id: str, token: str, field: str, expected: int, timeout_s: float = 30.0) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            answer = (await self.get(f"/v1/balances/{owner_id}", token)).json()
            if answer.get(field) == expected:
                return dict(answer)
            if loop.time() > deadline:
                raise AssertionError(f"{owner_id}.{field} is {answer.get(field)}, expected {expected}: {answer}")
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def wallet(stack: Stack, new_topic: TopicFactory) -> AsyncIterator[RunningWallet]:
    schema, ledger_schema = unique("t_wallet"), unique("t_ledger")
    clock = ManualClock(datetime(2026, 11, 21, 9, tzinfo=UTC))
    identity = await TestIdentity.create(stack, new_topic, clock)
    # The world's own command and event topics: wallets of other runs on the shared broker answer
    # the shared topic's commands too (unknown owner), which would mix into this world's answers.
    commands_topic, events_topic = await new_topic("wallet-commands", partitions=6), await new_topic("wallet-events", partitions=6)
    await new_topic.create(commands_topic + ".dlq", partitions=1)
    port = _free_port()
    settings = Settings(
        database_url=stack.database_url,
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=schema,
        ledger_schema=ledger_schema,
        http_port=port,
        identity_events_topic=identity.topic,
        commands_topic=commands_topic,
        events_topic=events_topic,
        kafka_consumer_group=unique("wallet-group"),
        outbox_poll_interval_ms=100,
        # Tests run the clock-driven jobs themselves after moving the ManualClock (T1).
        day_close_poll_interval_ms=3_600_000,
        hold_expiry_poll_interval_ms=3_600_000,
    )
    runtime = build(settings, clock)
    await runtime.start()
    await start_at_end(
        stack.kafka_bootstrap_servers, stack.database_url, schema, settings.consumer_group,
        ["invoicing.events.v1", "balances.v1", "campaign.events.v1"],
    )
    stop = asyncio.Event()
    serving = asyncio.ensure_future(runtime.serve(stop))
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            try:
                if (await client.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert loop.time() < deadline, "wallet did not become healthy"
            await asyncio.sleep(0.1)
        await identity.replicated(runtime.pool)
        yield RunningWallet(runtime, client, clock, stack.kafka_bootstrap_servers, identity, commands_topic, events_topic)
    finally:
        stop.set()
        await asyncio.gather(serving, return_exceptions=True)
        await client.aclose()
        await runtime.close()
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.execute(f"drop schema if exists {schema} cascade")
            await conn.execute(f"drop schema if exists {ledger_schema} cascade")
        finally:
            await conn.close()


async def test_w1_w4_w5_w9_m5_wallet_journey_over_http_kafka_and_postgres(wallet: RunningWallet) -> None:
    alice, alice_token = await wallet.user("alice")
    bob, bob_token = await wallet.user("bob")
    analyst, analyst_token = await wallet.user("ana")
    bc, other_bc = unique("bc"), unique("bc")
    for business_center, admin in ((bc, alice), (other_bc, bob)):
        answer = await wallet.open_business_center(business_center, admin)
        assert answer.status_code == 201, answer.text
    await wallet.grant(bc, analyst, "analyst")

    # W1: ad accounts under the Business Center; M5: the same key twice opens one account.
    a1, a2, a3 = unique("acc"), unique("acc"), unique("acc")
    key = wallet.key()
    first = await wallet.command("POST", f"/v1/business-centers/{bc}/ad-accounts", alice_token, {"id": a1, "name": "one", "type": "auction", "billing_option": "monthly_invoicing"}, key=key)
    again = await wallet.command("POST", f"/v1/business-centers/{bc}/ad-accounts", alice_token, {"id": a1, "name": "one", "type": "auction", "billing_option": "monthly_invoicing"}, key=key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    reused = await wallet.command("POST", f"/v1/business-centers/{bc}/ad-accounts", alice_token, {"id": a2, "name": "two", "type": "auction", "billing_option": "monthly_invoicing"}, key=key)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert (await wallet.command("POST", f"/v1/business-centers/{bc}/ad-accounts", alice_token, {"id": a2, "name": "two", "type": "auction", "billing_option": "monthly_invoicing", "budget": {"kind": "monthly", "amount_micros": 5 * USD}})).status_code == 201
    assert (await wallet.command("POST", f"/v1/business-centers/{bc}/ad-accounts", alice_token, {"id": a3, "name": "three", "type": "reservation", "billing_option": "prepaid"})).status_code == 201

    # I1/M5 money in: paid invoices arrive over Kafka. A re-sent event (same event id) and the
    # same invoice announced again under a new event id are each applied once.
    await wallet.pay("inv-1" + a1, a1, 10 * USD, copies=2)
    await wallet.pay("inv-1" + a1, a1, 10 * USD)
    await wallet.pay("inv-2" + a2, a2, 3 * USD)
    await wallet.balance_until(a2, alice_token, "real_micros", 3 * USD)
    assert (await wallet.balance_until(a1, alice_token, "real_micros", 10 * USD))["buckets"] == {"cash": 10 * USD, "credit_line": 0, "vouchers": 0}

    # W9: another Business Center's user can neither read nor change it, and cannot even tell it exists
    # (the answer of one that does not); an analyst cannot move money.
    nowhere = unique("bc")
    for path in (f"/v1/business-centers/{bc}", f"/v1/balances/{a1}"):
        hidden, missing = await wallet.get(path, bob_token), await wallet.get(path.replace(bc, nowhere).replace(a1, nowhere), bob_token)
        assert hidden.status_code == missing.status_code == 404 and hidden.json()["error"] == missing.json()["error"] == "not_found"
    denied = await wallet.command("POST", f"/v1/business-centers/{bc}/allocations", analyst_token, {"ad_account_id": a1, "bucket": "cash", "direction": "to_business_center", "amount_micros": USD, "currency": "USD"})
    assert denied.status_code == 403 and denied.json()["error"] == "permission_denied"
    assert (await wallet.command("POST", f"/v1/business-centers/{bc}/aba", bob_token)).status_code == 404

    # W2-W5: ABA moves the eligible accounts' cash to the Business Center and syncs budgets, in one step.
    enabled = await wallet.command("POST", f"/v1/business-centers/{bc}/aba", alice_token)
    assert enabled.status_code == 200, enabled.text
    result = enabled.json()
    assert sorted(result["eligible_ad_account_ids"]) == sorted([a1, a2]) and result["ineligible_ad_account_ids"] == [a3]
    assert result["cash_moved_micros"] == {a1: 10 * USD, a2: 3 * USD}
    assert result["budgets"][a1] == {"kind": "monthly", "amount_micros": 10 * USD}
    assert result["budgets"][a2] == {"kind": "monthly", "amount_micros": 5 * USD}
    assert (await wallet.get(f"/v1/balances/{bc}", alice_token)).json()["real_micros"] == 13 * USD
    assert (await wallet.get(f"/v1/balances/{a1}", alice_token)).json()["real_micros"] == 0
    again = await wallet.command("POST", f"/v1/business-centers/{bc}/aba", alice_token)
    assert again.status_code == 409 and again.json()["error"] == "aba_already_enabled"
    back = await wallet.command("DELETE", f"/v1/business-centers/{bc}/aba", alice_token)
    assert back.status_code == 409 and back.json()["error"] == "aba_is_one_way"

    # balances.v1: the contract's shape, one version more per change of each owner.
    records = await read_all(wallet.bootstrap, "balances.v1", expect=1, timeout_s=30, settle_s=1.0)
    mine = [json.loads(record.value or b"{}") for record in records if record.key == bc.encode()]
    assert [event["version"] for event in mine] == list(range(1, len(mine) + 1))
    latest = mine[-1]
    assert latest["owner_kind"] == "business_center" and latest["currency"] == "USD"
    assert latest["real_micros"] == 13 * USD and latest["buckets"] == {"cash": 13 * USD, "credit_line": 0, "vouchers": 0}
    assert {record.headers["event-type"] for record in records if record.key == bc.encode()} == {"BalanceChanged"}

    events = await read_all(wallet.bootstrap, wallet.events_topic, expect=1, timeout_s=30, settle_s=1.0)
    types = [record.headers["event-type"] for record in events if record.key == bc.encode()]
    assert types.count("AutomaticBalanceAllocationEnabled") == 1
    assert types.count("FundsReceived") == 2, "the re-sent payment was applied once"


async def test_w6_m2_allocation_and_a_payment_in_another_currency_goes_to_the_dead_letter_topic(wallet: RunningWallet) -> None:
    alice, alice_token = await wallet.user("alice")
    bc, account = unique("bc"), unique("acc")
    await wallet.open_business_center(bc, alice, currency="EUR")
    await wallet.command("POST", f"/v1/business-centers/{bc}/ad-accounts", alice_token, {"id": account, "name": "x", "type": "reservation", "billing_option": "prepaid"})
    await wallet.pay(unique("inv"), bc, 7 * USD, currency="USD")
    await wallet.pay(unique("inv"), bc, 5 * USD, currency="EUR")
    await wallet.balance_until(bc, alice_token, "real_micros", 5 * USD)
    grant = await wallet.command("POST", f"/v1/business-centers/{bc}/vouchers", PLATFORM, {"amount_micros": 2 * USD})
    assert grant.status_code == 200 and grant.json()["buckets"]["vouchers"] == 2 * USD
    moved = await wallet.command("POST", f"/v1/business-centers/{bc}/allocations", alice_token, {"ad_account_id": account, "bucket": "vouchers", "direction": "to_ad_account", "amount_micros": 2 * USD, "currency": "EUR"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["buckets"]["vouchers"] == 2 * USD
    too_much = await wallet.command("POST", f"/v1/business-centers/{bc}/allocations", alice_token, {"ad_account_id": account, "bucket": "cash", "direction": "to_ad_account", "amount_micros": 6 * USD, "currency": "EUR"})
    assert too_much.status_code == 409 and too_much.json()["error"] == "insufficient_funds"
    mixed = await wallet.command("POST", f"/v1/business-centers/{bc}/allocations", alice_token, {"ad_account_id": account, "bucket": "cash", "direction": "to_ad_account", "amount_micros": USD, "currency": "USD"})
    assert mixed.status_code == 422 and mixed.json()["error"] == "currency_mismatch"
    floats = await wallet.command("POST", f"/v1/business-centers/{bc}/allocations", alice_token, {"ad_account_id": account, "bucket": "cash", "direction": "to_ad_account", "amount_micros": 1.5, "currency": "EUR"})
    assert floats.status_code == 422 and floats.json()["error"] == "invalid_request"
    group = wallet.runtime.settings.consumer_group

    async def dead_letters() -> list[str]:
        dead = await read_all(wallet.bootstrap, "invoicing.events.v1.dlq", expect=0, timeout_s=30, settle_s=0.2)
        return [
            record.headers["dlq-reason"]
            for record in dead
            if record.key == bc.encode() and record.headers["dlq-consumer-group"] == group
        ]

    deadline = asyncio.get_running_loop().time() + 30
    while not (reasons := await dead_letters()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    assert reasons == ["currency mismatch: expected EUR, got USD"]
    assert (await wallet.get(f"/v1/balances/{bc}", alice_token)).json()["real_micros"] == 5 * USD
