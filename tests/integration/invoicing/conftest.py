"""The wallet, the spend consumer and the invoicing service, in-process on the real Kafka and
PostgreSQL, sharing one ManualClock; each with its own schema and consumer group.

Invoicing publishes on the shared `invoicing.events.v1` (the wallet reads paid invoices there);
every service starts its positions on the shared topics at their end, so a test reads only what
its own services publish. Spend goes to a topic of the test's own, as in the spend tests. The
local payment provider sends its signed webhooks over HTTP to the invoicing service under test.

The wallet and invoicing know their callers from the platform's one identity: the world's
`TestIdentity` publishes them on a topic of the world's own (`PLATFORM` is the operator's API key
there). The wallet's Admin of every Business Center is one person (`wallet_admin_id`), and a billing
user is a person with the Finance Manager role in the Business Center of each owner they bill for
(W9). The wallet's commands and events go on topics of the world's own (`wallet_commands_topic`,
`wallet_events_topic`), read by the spend consumer and invoicing, so wallets of other runs on the
shared broker never answer this world's commands.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from adledger_contracts.external import SpendReported
from adledger_contracts.topics import topic
from adledger_invoicing.config import Settings as InvoicingSettings
from adledger_invoicing.inject import Service, wire
from adledger_libs.clock import ManualClock
from adledger_libs.kafka import ensure_topics
from adledger_libs.runtime import ServiceRuntime
from adledger_spend_consumer.config import Settings as SpendSettings
from adledger_spend_consumer.inject import build as build_spend_consumer
from adledger_wallet.config import Settings as WalletSettings
from adledger_wallet.inject import build as build_wallet

from ..conftest import Stack, TopicFactory, unique
from ..identity_world import PLATFORM, TestIdentity
from ..kafka_io import Record, first_of_each_event_id, produce, read_all, start_at_end
from ..waits import free_port as _free_port
from ..waits import until

USD = 1_000_000
SECRET = "test-webhook-secret"
#: A billing user's session outlives the longest clock move of a journey (to a month's close).
SESSION_LIFETIME = timedelta(days=400)
SPEND_TOPIC = "ads.spend.v1"


async def _healthy(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:

        async def check() -> bool:
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await until(check, f"a healthy service on {port}")


@dataclass
class Billing:
    stack: Stack
    clock: ManualClock
    service: Service
    wallet: httpx.AsyncClient
    invoicing: httpx.AsyncClient
    spend_schema: str
    invoicing_schema: str
    spend_topic: str
    #: The platform's identity as the wallet and invoicing see it (None only for worlds built without it).
    identity: TestIdentity | None = None
    wallet_commands_topic: str = "wallet.commands.v1"
    wallet_events_topic: str = "wallet.events.v1"
    wallet_admin_id: str = ""
    wallet_admin_token: str = ""
    #: The wallet's runtime (a platform test drives the campaign service beside it).
    wallet_runtime: ServiceRuntime | None = None
    #: Where the spend consumer posts spend and its delivery decisions (the shared topics unless
    #: the world was asked for its own).
    posted_topic: str = "spend.posted.v1"
    control_topic: str = "delivery.control.v1"
    state_topic: str = "delivery.state.v1"
    #: The shared ledger's schema of this world, and the invoicing service's commands topic (the
    #: shared one unless the world was asked for its own).
    ledger_schema: str = "ledger"
    invoicing_commands_topic: str = "invoicing.commands.v1"

    # HTTP ------------------------------------------------------------------------------------------

    async def call(self, client: httpx.AsyncClient, method: str, path: str, token: str, body: Any = None, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if method != "GET":
            headers["Idempotency-Key"] = key or unique("key")
        return await client.request(method, path, json=body, headers=headers)

    async def wallet_command(self, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        answer = await self.call(self.wallet, method, path, token, body)
        assert answer.status_code < 300, answer.text
        return answer

    async def business_center(self, *, aba_accounts: int = 0, monthly_accounts: int = 0) -> tuple[str, list[str]]:
        business_center_id = unique("bc")
        body = {"id": business_center_id, "name": "Acme", "currency": "USD", "admin_user_id": self.wallet_admin_id}
        await self.wallet_command("POST", "/v1/business-centers", PLATFORM, body)
        # The identity service makes the named admin the Business Center's Admin (here: the world's identity).
        assert self.identity is not None and self.wallet_runtime is not None
        pool = self.wallet_runtime.pool
        await self.identity.grant(business_center_id, self.wallet_admin_id, "admin", replicas=[pool])
        accounts = []
        for _ in range(max(aba_accounts, monthly_accounts)):
            account_id = unique("acc")
            await self.wallet_command(
                "POST", f"/v1/business-centers/{business_center_id}/ad-accounts", self.wallet_admin_token,
                {"id": account_id, "name": "x", "type": "auction", "billing_option": "monthly_invoicing"},
            )
            accounts.append(account_id)
        if aba_accounts:
            await self.wallet_command("POST", f"/v1/business-centers/{business_center_id}/aba", self.wallet_admin_token)
        return business_center_id, accounts

    async def subscribe(self, owner_id: str, status: str = "active", billing_email: str | None = "billing@acme.example") -> None:
        answer = await self.call(self.invoicing, "PUT", f"/v1/subscriptions/{owner_id}", PLATFORM, {"status": status, "billing_email": billing_email})
        assert answer.status_code == 200, answer.text

    async def owner_business_center(self, owner_id: str) -> str:
        """The Business Center of an owner (itself, or its ad account's), once invoicing knows it."""

        async def known() -> str | None:
            query = f"select business_center_id from {self.invoicing_schema}.owners where owner_id = $1"
            rows = await self.fetch(query, owner_id)
            return str(rows[0]["business_center_id"]) if rows else None

        return str(await until(known, f"invoicing knows the owner {owner_id}"))

    async def billing_user(self, *owner_ids: str, role: str = "finance_manager") -> str:
        """A person who bills for the owners: `role` in each one's Business Center (W9); their session token."""
        assert self.identity is not None
        pool = self.service.runtime.pool
        user_id = await self.identity.user(unique("ann"), name="Ann Billing", replicas=[pool])
        for owner_id in owner_ids:
            await self.identity.grant(await self.owner_business_center(owner_id), user_id, role, replicas=[pool])
        return self.identity.session(user_id, lifetime=SESSION_LIFETIME)

    async def top_up(self, token: str, owner_id: str, *, amount_micros: int | None = None, target_micros: int | None = None, key: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"owner_id": owner_id, "currency": "USD"}
        if amount_micros is not None:
            body["amount_micros"] = amount_micros
        if target_micros is not None:
            body["target_micros"] = target_micros
        return await self.call(self.invoicing, "POST", "/v1/top-ups", token, body, key)

    async def provider(self, invoice_id: str, scenario: str, token: str = PLATFORM, key: str | None = None) -> dict[str, Any]:
        """The local provider pays (fails, pays twice...) an invoice: a platform operator's tool."""
        answer = await self.call(self.invoicing, "POST", f"/v1/local-provider/invoices/{invoice_id}/payments", token, {"scenario": scenario}, key)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def invoice(self, invoice_id: str, token: str = PLATFORM) -> dict[str, Any]:
        answer = await self.call(self.invoicing, "GET", f"/v1/invoices/{invoice_id}", token)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def invoices(self, owner_id: str, status: str | None = None) -> list[dict[str, Any]]:
        path = f"/v1/invoices?owner_id={owner_id}" + (f"&status={status}" if status else "")
        answer = await self.call(self.invoicing, "GET", path, PLATFORM)
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    async def invoices_until(self, owner_id: str, predicate: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        async def check() -> list[dict[str, Any]] | None:
            found = await self.invoices(owner_id)
            return found if predicate(found) else None

        return list(await until(check, what))

    async def overview(self, owner_id: str, token: str = PLATFORM) -> dict[str, Any]:
        answer = await self.call(self.invoicing, "GET", f"/v1/owners/{owner_id}/billing", token)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def overview_until(self, owner_id: str, real_micros: int) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            found = await self.overview(owner_id)
            return found if found["balance"] is not None and found["balance"]["real_micros"] == real_micros else None

        return dict(await until(check, f"invoicing sees the balance of {owner_id} at {real_micros}"))

    async def wallet_balance(self, owner_id: str) -> dict[str, Any]:
        answer = await self.call(self.wallet, "GET", f"/v1/balances/{owner_id}", self.wallet_admin_token)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def wallet_balance_until(self, owner_id: str, field_name: str, expected: int) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            found = await self.wallet_balance(owner_id)
            return found if found[field_name] == expected else None

        try:
            return dict(await until(check, f"{owner_id}.{field_name} == {expected}"))
        except AssertionError as error:
            raise AssertionError(f"{error}: {await self.wallet_balance(owner_id)}") from None

    # Kafka and the database ---------------------------------------------------------------------------

    async def send_spends(self, spends: list[SpendReported]) -> None:
        await produce(self.stack.kafka_bootstrap_servers, self.spend_topic, [(s.ad_account_id.encode(), s.model_dump_json().encode(), []) for s in spends])

    def spend(self, account_id: str, amount_micros: int) -> SpendReported:
        return SpendReported(event_id=unique("spend"), ad_account_id=account_id, campaign_id="campaign-1", amount_micros=amount_micros, currency="USD", occurred_at=self.clock.now())

    async def records(self, topic_name: str, keys: set[str], expect: int, *, settle_s: float = 1.0) -> list[Record]:
        """The records of a topic keyed by one of `keys`, once at least `expect` arrived, and after
        a moment more (so a duplicate would be seen too)."""

        async def mine() -> list[Record]:
            read = await read_all(self.stack.kafka_bootstrap_servers, topic_name, expect=0, settle_s=0.2)
            found = [r for r in read if r.key is not None and r.key.decode() in keys]
            # Delivery decisions as a subscriber reads them (a pause leaves twice under one event id).
            return first_of_each_event_id(found) if topic_name in {"delivery.control.v1", self.control_topic} else found

        async def check() -> list[Record] | None:
            found = await mine()
            return found if len(found) >= expect else None

        await until(check, f"{expect} records on {topic_name}")
        await asyncio.sleep(settle_s)
        return await mine()

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


def typed(records: list[Record], event_type: str) -> list[dict[str, Any]]:
    return [json.loads(record.value or b"{}") for record in records if record.headers.get("event-type") == event_type]


@pytest_asyncio.fixture
async def billing(stack: Stack) -> AsyncIterator[Billing]:
    async with billing_world(stack) as running:
        yield running


@asynccontextmanager
async def billing_world(stack: Stack, *, own_delivery_topics: bool = False, emails_from_the_end: bool = False,
                        own_commands_topic: bool = False, identity_topic: str | None = None) -> AsyncIterator[Billing]:
    """The wallet, the spend consumer and invoicing running. With `own_delivery_topics`, the
    spend consumer posts spend and delivery decisions on topics of the world's own, laid out like
    `spend.posted.v1`, `delivery.control.v1` and `delivery.state.v1` (invoicing reads that posted
    spend), so a reader of them sees only this world's records. With `emails_from_the_end`, the
    e-mail adapter starts at the end of `orders.events.v1` and `invoicing.events.v1`, so its sink
    gets only the e-mails asked for while the world runs. With `own_commands_topic`, invoicing reads
    its commands from a topic of the world's own (`Billing.invoicing_commands_topic`)."""
    wallet_schema, spend_schema, invoicing_schema, ledger_schema = unique("t_wallet"), unique("t_spend"), unique("t_invoicing"), unique("t_ledger")
    clock = ManualClock(datetime(2026, 11, 21, 9, tzinfo=UTC))
    common: dict[str, Any] = {"database_url": stack.database_url, "kafka_bootstrap_servers": stack.kafka_bootstrap_servers, "outbox_poll_interval_ms": 100}
    identity_topics = TopicFactory(stack.kafka_bootstrap_servers)
    if identity_topic is not None:  # the world's identity publishes on a topic an identity service shares
        async def given(prefix: str = "", partitions: int = 1) -> str:
            return identity_topic

        identity_topics = given  # type: ignore[assignment]
    identity = await TestIdentity.create(stack, identity_topics, clock)
    wallet_port, spend_port, invoicing_port = _free_port(), _free_port(), _free_port()
    wallet_group, spend_group, invoicing_group = unique("wallet-group"), unique("spend-group"), unique("invoicing-group")
    factory = TopicFactory(stack.kafka_bootstrap_servers)
    wallet_commands = await factory("wallet-commands", partitions=6)
    wallet_events = await factory("wallet-events", partitions=6)
    await factory.create(wallet_commands + ".dlq", partitions=1)
    await factory.create(wallet_events + ".dlq", partitions=1)
    commands_topic = "invoicing.commands.v1"
    if own_commands_topic:
        commands_topic = await factory("invoicing-commands", partitions=3)
        await factory.create(commands_topic + ".dlq", partitions=1)
    wallet = build_wallet(
        WalletSettings(
            **common, database_schema=wallet_schema, ledger_schema=ledger_schema, http_port=wallet_port,
            identity_events_topic=identity.topic, commands_topic=wallet_commands, events_topic=wallet_events,
            kafka_consumer_group=wallet_group, day_close_poll_interval_ms=3_600_000, hold_expiry_poll_interval_ms=3_600_000,
        ),
        clock,
    )
    spend_topic = unique(SPEND_TOPIC)
    own = {name: unique(name) if own_delivery_topics else name for name in ("spend.posted.v1", "delivery.control.v1", "delivery.state.v1")}
    await ensure_topics(
        stack.kafka_bootstrap_servers,
        [
            replace(topic(SPEND_TOPIC), name=spend_topic, partitions=3), replace(topic(SPEND_TOPIC + ".dlq"), name=spend_topic + ".dlq"),
            *(replace(topic(shared), name=name) for shared, name in own.items() if name != shared),
            # The campaign service dead-letters posted spend it cannot take (delivery control has no DLQ).
            *([replace(topic("spend.posted.v1.dlq"), name=own["spend.posted.v1"] + ".dlq")] if own_delivery_topics else []),
        ],
    )
    spend: ServiceRuntime = build_spend_consumer(
        SpendSettings(
            **common, database_schema=spend_schema, ledger_schema=ledger_schema, http_port=spend_port, kafka_consumer_group=spend_group, spend_topic=spend_topic,
            wallet_events_topic=wallet_events,
            spend_posted_topic=own["spend.posted.v1"], delivery_control_topic=own["delivery.control.v1"], delivery_state_topic=own["delivery.state.v1"],
        ),
        clock,
    )
    invoicing = wire(
        InvoicingSettings(
            **common, database_schema=invoicing_schema, ledger_schema=ledger_schema, http_port=invoicing_port,
            identity_events_topic=identity.topic, kafka_consumer_group=invoicing_group, payment_webhook_secret=SECRET,
            wallet_events_topic=wallet_events,
            # Tests run the clock-driven jobs themselves after moving the ManualClock (T1).
            clock_jobs_poll_interval_ms=3_600_000, spend_posted_topic=own["spend.posted.v1"],
            commands_topic=commands_topic,
        ),
        clock,
    )
    runtimes = [wallet, spend, invoicing.runtime]
    # Started together (migrations take an advisory lock per schema, the shared ledger's too).
    await asyncio.gather(*(runtime.start() for runtime in runtimes))
    bootstrap, url = stack.kafka_bootstrap_servers, stack.database_url
    await start_at_end(
        bootstrap, url, wallet_schema, wallet_group, ["invoicing.events.v1", "balances.v1", "campaign.events.v1"]
    )
    await start_at_end(bootstrap, url, spend_schema, spend_group, ["balances.v1", "campaign.events.v1"])
    # With `emails_from_the_end`, the e-mail adapter's topics too: it renders no e-mail other runs asked for.
    emails = ["orders.events.v1", "invoicing.events.v1"] if emails_from_the_end else []
    shared = ["balances.v1", "invoicing.commands.v1", own["spend.posted.v1"], *emails]
    await start_at_end(bootstrap, url, invoicing_schema, invoicing_group, shared)
    stop = asyncio.Event()
    serving = [asyncio.ensure_future(runtime.serve(stop)) for runtime in runtimes]
    wallet_client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{wallet_port}", timeout=15.0)
    invoicing_client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{invoicing_port}", timeout=15.0)
    try:
        for port in (wallet_port, spend_port, invoicing_port):
            await _healthy(port)
        await identity.replicated(invoicing.runtime.pool)
        await identity.replicated(wallet.pool)
        running = Billing(
            stack, clock, invoicing, wallet_client, invoicing_client, spend_schema, invoicing_schema, spend_topic,
            identity=identity, wallet_commands_topic=wallet_commands, wallet_events_topic=wallet_events,
            wallet_runtime=wallet,
            posted_topic=own["spend.posted.v1"], control_topic=own["delivery.control.v1"], state_topic=own["delivery.state.v1"],
            ledger_schema=ledger_schema, invoicing_commands_topic=commands_topic,
        )
        running.wallet_admin_id = await identity.user(unique("alice"), name="Alice", replicas=[wallet.pool])
        running.wallet_admin_token = identity.session(running.wallet_admin_id, lifetime=SESSION_LIFETIME)
        yield running
        for task in serving:
            assert not task.done(), f"a service stopped during the test: {task.exception() if task.done() else ''}"
    finally:
        stop.set()
        await asyncio.gather(*serving, return_exceptions=True)
        await wallet_client.aclose()
        await invoicing_client.aclose()
        for runtime in runtimes:
            await runtime.close()
        conn = await asyncpg.connect(stack.database_url)
        try:
            for schema in (wallet_schema, spend_schema, invoicing_schema, ledger_schema):
                await conn.execute(f"drop schema if exists {schema} cascade")
        finally:
            await conn.close()
