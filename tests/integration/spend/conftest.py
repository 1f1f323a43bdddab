"""The wallet and the spend consumer, both in-process against the real Kafka and PostgreSQL,
sharing one isolated ledger schema and one ManualClock; each with its own schema and consumer group.

Spend goes to a topic of the test's own, laid out like `ads.spend.v1` (with its `.dlq`), so what
other runs, a simulator or a benchmark produce on the shared topic cannot disturb a test; so do
the campaign snapshots the test publishes (like `campaign.events.v1`) and the posted spend (like
`spend.posted.v1`). The
spend consumer's stored positions on the shared `wallet.events.v1` and `balances.v1` are set to
their end before it starts (the database is the truth for positions), so it reads only what the
test's wallet publishes from then on. A test module that overrides the `own_delivery_topics`
fixture to say yes also gets delivery topics of its own, laid out like `delivery.control.v1` and
`delivery.state.v1` (`Services.control_topic`, `Services.state_topic`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from adledger_contracts.campaigns import AdAccountBudgetCapChanged, CampaignChanged
from adledger_contracts.external import SpendReported
from adledger_contracts.topics import topic
from adledger_contracts.wallet import InvoicePaid, PlaceHold
from adledger_libs.clock import ManualClock
from adledger_libs.events import encode
from adledger_libs.kafka import ensure_topics
from adledger_libs.runtime import ServiceRuntime
from adledger_spend_consumer.config import Settings as SpendSettings
from adledger_spend_consumer.inject import wire as wire_spend_consumer
from adledger_wallet.config import Settings as WalletSettings
from adledger_wallet.inject import build as build_wallet

from ..conftest import Stack, TopicFactory, unique
from ..identity_world import PLATFORM, TestIdentity
from ..kafka_io import Record, encoded, first_of_each_event_id, produce, read_all, start_at_end
from ..waits import free_port as _free_port, until as _until

USD = 1_000_000
SPEND_TOPIC = "ads.spend.v1"
CAMPAIGN_TOPIC = "campaign.events.v1"
POSTED_TOPIC = "spend.posted.v1"
CONTROL_TOPIC = "delivery.control.v1"
STATE_TOPIC = "delivery.state.v1"


@dataclass
class Services:
    wallet: ServiceRuntime
    spend: ServiceRuntime
    client: httpx.AsyncClient
    clock: ManualClock
    bootstrap: str
    spend_schema: str
    database_url: str
    spend_topic: str
    admin_token: str = ""
    admin_id: str = ""
    events: int = field(default=0)
    #: The test's own topics laid out like campaign.events.v1 and spend.posted.v1.
    campaign_topic: str = ""
    posted_topic: str = ""
    #: The spend consumer's budget-period job (S3, W10): tests move the clock, then run it (T1).
    renew_budget_periods: Callable[[], Any] | None = None
    versions: dict[str, int] = field(default_factory=dict)
    #: The spend consumer's wiring (`inject.Service`): its runtime, its consumer and its jobs.
    spend_service: Any = None
    #: The platform's identity in this world (users, roles), as the wallet reads it.
    identity: Any = None
    #: Where the spend consumer publishes its delivery decisions and states: the shared topics, or
    #: the world's own laid out like them (a module overrides the `own_delivery_topics` fixture).
    control_topic: str = "delivery.control.v1"
    state_topic: str = "delivery.state.v1"

    async def command(self, method: str, path: str, token: str, body: dict[str, object] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": unique("key")}
        answer = await self.client.request(method, path, json=body, headers=headers)
        assert answer.status_code < 300, answer.text
        return answer

    async def business_center(self, currency: str = "USD") -> str:
        business_center_id = unique("bc")
        await self.command("POST", "/v1/business-centers", PLATFORM, {"id": business_center_id, "name": "Acme", "currency": currency, "admin_user_id": self.admin_id})
        # What the identity service does when it reads the wallet's BusinessCenterOpened (W9).
        await self.identity.grant(business_center_id, self.admin_id, "admin", replicas=[self.wallet.pool])
        return business_center_id

    async def ad_account(self, business_center_id: str, *, aba_eligible: bool = False, account_id: str | None = None) -> str:
        account_id = account_id or unique("acc")
        kind = {"type": "auction", "billing_option": "monthly_invoicing"} if aba_eligible else {"type": "reservation", "billing_option": "prepaid"}
        await self.command("POST", f"/v1/business-centers/{business_center_id}/ad-accounts", self.admin_token, {"id": account_id, "name": "x", **kind})
        return account_id

    async def known_to_spend_consumer(self, account_id: str, *, aba: bool = False) -> None:
        async def check() -> bool:
            row = await self.fetchrow(f"select draws_on_business_center from {self.spend_schema}.ad_accounts where ad_account_id = $1", account_id)
            return row is not None and row["draws_on_business_center"] == aba

        await _until(check, f"{account_id} known to the spend consumer")

    async def pay(self, owner_id: str, amount_micros: int, currency: str = "USD") -> None:
        event = InvoicePaid(invoice_id=unique("inv"), owner_id=owner_id, amount_micros=amount_micros, currency=currency, paid_at=self.clock.now())
        await produce(self.bootstrap, "invoicing.events.v1", [encoded(event, owner_id, topic="invoicing.events.v1")])

    def spend_event(
        self, account_id: str, amount_micros: int, *, currency: str = "USD", event_id: str | None = None, charge_id: str | None = None,
        campaign_id: str = "campaign-1",
    ) -> SpendReported:
        return SpendReported(
            event_id=event_id or unique("spend"), ad_account_id=account_id, campaign_id=campaign_id, amount_micros=amount_micros,
            currency=currency, occurred_at=self.clock.now(), charge_id=charge_id,
        )

    async def book(self, owner_id: str, amount_micros: int, *, hold_id: str | None = None) -> str:
        """Hold a prepaid campaign's booking (C1) through the wallet's command topic, as the campaign service does."""
        hold_id = hold_id or unique("booking")
        command = PlaceHold(
            idempotency_key=f"{hold_id}:place", hold_id=hold_id, owner_id=owner_id, amount_micros=amount_micros, currency="USD",
            purpose="campaign_booking", requested_by="campaign",
        )
        await produce(self.bootstrap, "wallet.commands.v1", [encoded(command, owner_id, topic="wallet.commands.v1")])
        return hold_id

    def _next_version(self, entity: str) -> int:
        self.versions[entity] = self.versions.get(entity, 0) + 1
        return self.versions[entity]

    async def campaign(
        self, account_id: str, campaign_id: str, *, budget_micros: int, status: str = "active", budget_kind: str = "lifetime",
        funding_mode: str = "drawdown", booked_micros: int = 0, pause_cause: str | None = None, version: int | None = None,
    ) -> CampaignChanged:
        """Publish a campaign snapshot as the campaign service does (the next version unless given)."""
        event = CampaignChanged(
            campaign_id=campaign_id, ad_account_id=account_id, name=campaign_id, funding_mode=funding_mode,  # type: ignore[arg-type]
            budget_kind=budget_kind, budget_micros=budget_micros, booked_micros=booked_micros, currency="USD",  # type: ignore[arg-type]
            status=status, previous_status=None, pause_cause=pause_cause, changed_at=self.clock.now(),  # type: ignore[arg-type]
            version=version or self._next_version(f"{account_id}/{campaign_id}"),
        )
        await self._publish_campaign_event(account_id, event)
        return event

    async def cap(
        self, account_id: str, kind: str, amount_micros: int | None, *, starts_on: date | None = None, ends_on: date | None = None,
    ) -> AdAccountBudgetCapChanged:
        event = AdAccountBudgetCapChanged(
            ad_account_id=account_id, kind=kind, amount_micros=amount_micros, starts_on=starts_on, ends_on=ends_on,  # type: ignore[arg-type]
            currency="USD", source="user", version=self._next_version(f"cap/{account_id}"), changed_at=self.clock.now(),
        )
        await self._publish_campaign_event(account_id, event)
        return event

    async def _publish_campaign_event(self, account_id: str, event: CampaignChanged | AdAccountBudgetCapChanged) -> None:
        envelope = encode(event, key=account_id, trace_id="trace-campaign")
        await produce(self.bootstrap, self.campaign_topic, [(envelope.key, envelope.value, list(envelope.headers))])

    async def state_of(self, key: str) -> asyncpg.Record | None:
        return await self.fetchrow(f"select * from {self.spend_schema}.delivery_states where key = $1", key)

    async def never_paused(self, key: str) -> bool:
        """No decision was ever taken for the key: no row, or only the serving row with no cause
        that locking it for a first decision creates."""
        row = await self.state_of(key)
        return row is None or (row["serving"] and not row["causes"] and row["reason"] == "serving")

    async def state_until(self, key: str, predicate: Callable[[asyncpg.Record], bool], what: str = "") -> asyncpg.Record:
        async def check() -> asyncpg.Record | None:
            row = await self.state_of(key)
            return row if row is not None and predicate(row) else None

        try:
            return await _until(check, what or f"the state of {key}")
        except AssertionError as error:
            raise AssertionError(f"{error}: {dict(await self.state_of(key) or {})}") from None

    async def campaign_until(self, account_id: str, campaign_id: str, version: int) -> None:
        async def check() -> bool:
            row = await self.fetchrow(
                f"select version from {self.spend_schema}.campaigns where ad_account_id = $1 and campaign_id = $2", account_id, campaign_id
            )
            return row is not None and row["version"] >= version

        await _until(check, f"campaign {campaign_id} v{version} known to the spend consumer")

    async def cap_until(self, account_id: str, version: int) -> None:
        async def check() -> bool:
            row = await self.fetchrow(f"select version from {self.spend_schema}.account_caps where ad_account_id = $1", account_id)
            return row is not None and row["version"] >= version

        await _until(check, f"the cap of {account_id} v{version} known to the spend consumer")

    async def run_budget_periods(self) -> int:
        assert self.renew_budget_periods is not None
        return int(await self.renew_budget_periods())

    async def send_spends(self, spends: list[SpendReported]) -> None:
        """Produce as an ad server does: the contract's JSON, keyed by ad account, with no headers."""
        await produce(self.bootstrap, self.spend_topic, [(spend.ad_account_id.encode(), spend.model_dump_json().encode(), []) for spend in spends])

    async def send_raw(self, key: str, value: bytes) -> None:
        await produce(self.bootstrap, self.spend_topic, [(key.encode(), value, [])])

    async def balance(self, owner_id: str) -> dict[str, Any]:
        answer = await self.client.get(f"/v1/balances/{owner_id}", headers={"Authorization": f"Bearer {self.admin_token}"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def balance_until(self, owner_id: str, field_name: str, expected: int) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            current = await self.balance(owner_id)
            return current if current[field_name] == expected else None

        try:
            return dict(await _until(check, f"{owner_id}.{field_name} == {expected}"))
        except AssertionError as error:
            raise AssertionError(f"{error}: {await self.balance(owner_id)}") from None

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def pauses_until(self, account_id: str, predicate: Callable[[list[asyncpg.Record]], bool]) -> list[asyncpg.Record]:
        async def check() -> list[asyncpg.Record] | None:
            rows = await self.fetch(f"select * from {self.spend_schema}.pauses where ad_account_id = $1 order by id", account_id)
            return rows if predicate(rows) else None

        return list(await _until(check, f"pauses of {account_id}"))

    async def records_for(self, topic: str, keys: set[str], expect: int) -> list[Record]:
        """The records of `topic` keyed by one of `keys`, once at least `expect` arrived (and a moment more)."""

        async def check() -> list[Record] | None:
            read = await read_all(self.bootstrap, topic, expect=0, settle_s=0.3)
            records = self._as_subscriber(
                topic, [record for record in read if record.key is not None and record.key.decode() in keys]
            )
            return records if len(records) >= expect else None

        await _until(check, f"{expect} records on {topic}")
        await asyncio.sleep(0.5)
        read = await read_all(self.bootstrap, topic, expect=0, settle_s=0.5)
        return self._as_subscriber(
            topic, [record for record in read if record.key is not None and record.key.decode() in keys]
        )

    def _as_subscriber(self, topic: str, records: list[Record]) -> list[Record]:
        """A pause leaves delivery.control.v1 twice by design (issue 14: the moment it is decided,
        and from the outbox after the commit) under one event id: the records a subscriber acts on,
        the first of each event id, as CONTRACT.md's subscribers dedupe."""
        return first_of_each_event_id(records) if topic == self.control_topic else records


def values(records: list[Record]) -> list[dict[str, Any]]:
    return [json.loads(record.value or b"{}") for record in records]


async def _healthy(client: httpx.AsyncClient) -> None:
    async def check() -> bool:
        try:
            return (await client.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    await _until(check, "a healthy service")


@pytest.fixture
def own_delivery_topics() -> bool:
    """Whether the world's spend consumer publishes on delivery topics of its own, laid out like
    `delivery.control.v1` and `delivery.state.v1`, so a reader of them from the beginning (an ad
    server's cold start) sees only this world. A test module overrides this fixture to say so."""
    return False


@pytest_asyncio.fixture
async def services(stack: Stack, new_topic: TopicFactory, own_delivery_topics: bool) -> AsyncIterator[Services]:
    wallet_schema, spend_schema, ledger_schema = unique("t_wallet"), unique("t_spend"), unique("t_ledger")
    clock = ManualClock(datetime(2026, 11, 21, 9, tzinfo=UTC))
    identity = await TestIdentity.create(stack, new_topic, clock)
    common: dict[str, Any] = {"database_url": stack.database_url, "kafka_bootstrap_servers": stack.kafka_bootstrap_servers, "outbox_poll_interval_ms": 100}
    wallet_port, spend_port = _free_port(), _free_port()
    wallet_group = unique("wallet-group")
    wallet = build_wallet(
        WalletSettings(
            **common, database_schema=wallet_schema, ledger_schema=ledger_schema, http_port=wallet_port,
            identity_events_topic=identity.topic, kafka_consumer_group=wallet_group, day_close_poll_interval_ms=3_600_000, hold_expiry_poll_interval_ms=3_600_000,
        ),
        clock,
    )
    spend_group = unique("spend-group")
    # A spend topic of its own, laid out like ads.spend.v1 (key: ad account): other runs, a
    # simulator or a benchmark producing on the shared topic meanwhile cannot disturb the test.
    spend_topic = unique(SPEND_TOPIC)
    campaign_topic, posted_topic = unique(CAMPAIGN_TOPIC), unique(POSTED_TOPIC)
    control_topic, state_topic = (
        (unique(CONTROL_TOPIC), unique(STATE_TOPIC)) if own_delivery_topics else (CONTROL_TOPIC, STATE_TOPIC)
    )
    await ensure_topics(
        stack.kafka_bootstrap_servers,
        [
            replace(topic(SPEND_TOPIC), name=spend_topic, partitions=3), replace(topic(SPEND_TOPIC + ".dlq"), name=spend_topic + ".dlq"),
            replace(topic(CAMPAIGN_TOPIC), name=campaign_topic, partitions=3),
            replace(topic(CAMPAIGN_TOPIC + ".dlq"), name=campaign_topic + ".dlq"),
            replace(topic(POSTED_TOPIC), name=posted_topic, partitions=3),
            *(
                [replace(topic(CONTROL_TOPIC), name=control_topic, partitions=3), replace(topic(STATE_TOPIC), name=state_topic, partitions=3)]
                if own_delivery_topics
                else []
            ),
        ],
    )
    spend_service = wire_spend_consumer(
        SpendSettings(
            **common, database_schema=spend_schema, ledger_schema=ledger_schema, http_port=spend_port, kafka_consumer_group=spend_group,
            spend_topic=spend_topic, campaign_events_topic=campaign_topic, spend_posted_topic=posted_topic,
            delivery_control_topic=control_topic, delivery_state_topic=state_topic,
            # Tests run the job themselves after moving the clock (T1).
            budget_period_poll_interval_ms=3_600_000,
        ),
        clock,
    )
    spend = spend_service.runtime
    await wallet.start()
    await spend.start()
    # Both start at the end of the shared topics, so neither replays (and dead-letters) what
    # other runs left there: the wallet would otherwise re-reject every earlier run's payments.
    await start_at_end(stack.kafka_bootstrap_servers, stack.database_url, spend_schema, spend_group, ["wallet.events.v1", "balances.v1"])
    await start_at_end(stack.kafka_bootstrap_servers, stack.database_url, wallet_schema, wallet_group, ["invoicing.events.v1", "wallet.commands.v1", "balances.v1"])
    stop = asyncio.Event()
    serving = [asyncio.ensure_future(wallet.serve(stop)), asyncio.ensure_future(spend.serve(stop))]
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{wallet_port}", timeout=10.0)
    try:
        await _healthy(client)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{spend_port}", timeout=10.0) as spend_client:
            await _healthy(spend_client)
        running = Services(
            wallet, spend, client, clock, stack.kafka_bootstrap_servers, spend_schema, stack.database_url, spend_topic,
            campaign_topic=campaign_topic, posted_topic=posted_topic, renew_budget_periods=spend_service.budget_periods.run,
            spend_service=spend_service, identity=identity, control_topic=control_topic, state_topic=state_topic,
        )
        await identity.replicated(wallet.pool)
        running.admin_id, running.admin_token = await identity.person("alice", replicas=[wallet.pool])
        yield running
        for task in serving:
            assert not task.done(), f"a service stopped during the test: {task.exception() if task.done() else ''}"
    finally:
        stop.set()
        await asyncio.gather(*serving, return_exceptions=True)
        await client.aclose()
        await wallet.close()
        await spend.close()
        conn = await asyncpg.connect(stack.database_url)
        try:
            for schema in (wallet_schema, spend_schema, ledger_schema):
                await conn.execute(f"drop schema if exists {schema} cascade")
        finally:
            await conn.close()
