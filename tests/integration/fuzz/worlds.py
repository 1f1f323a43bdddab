"""The fuzzing worlds (issue 12, items 5 and 6): each service in-process on the real Kafka and
PostgreSQL, every topic it consumes its own (private, one partition, with its dead-letter topic),
the services it needs beside it (the wallet, whose events tell the campaign, order escrow and spend
consumer who owns money, and which answers their holds), and the platform's one identity.

One entry per service in `KITS`: how its world starts and how a tenant is seeded in it. The three
parts walk every entry: the OpenAPI fuzz (`test_http_fuzz.py`), the hostile records
(`test_hostile_records.py`) and the tenant-isolation matrix (`test_isolation_matrix.py`). A world
lives for the session and each part seeds its own tenant in it, with ids no other part knows.

What a world gives the parts:
- `snapshot()`: every table of every service's schema and of the ledger, as (rows, digest), so
  "a refused request changed nothing" compares the whole stored state (the ledger's accounts'
  totals and transfers, the outboxes, the idempotency answers, and the services' own tables);
- `relays_paused()`: no outbox row leaves while it is held (the relays' own advisory lock is
  taken, as by another instance), so nothing a request caused can come back through Kafka while
  the next request's snapshot is taken;
- `settle()`: waits until every outbox is empty and every consumer has applied everything on its
  topics, so a world is quiet before a snapshot that must not move.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from adledger_auth import tokens
from adledger_contracts.topics import dead_letter_topic
from adledger_contracts.wallet import BusinessCenterOpened, InvoicePaid
from adledger_libs.clock import ManualClock
from adledger_libs.events import encode
from adledger_libs.runtime import ServiceRuntime

from ..conftest import Stack, TopicFactory, unique
from ..identity_world import PLATFORM, TestIdentity
from ..kafka_io import delete_consumer_groups, encoded, produce
from ..running import running
from ..waits import free_port, until

USD = 1_000_000
#: The world's clock stands still unless a test moves it (T1): no deadline passes by itself.
WORLD_START = datetime(2026, 12, 7, 9, tzinfo=UTC)
#: Jobs run once at start and then effectively never: tests run them after moving the clock.
NEVER_MS = 3_600_000
ROLES = ("admin", "finance_manager", "operator", "analyst")


@dataclass(frozen=True)
class Person:
    user_id: str
    token: str


class People(Protocol):
    """The platform's one identity as a world sees it: who exists, with which roles, and tokens."""

    platform: str

    async def person(self, name: str) -> Person: ...

    async def integration(self, name: str, scopes: Sequence[str]) -> Person: ...

    async def grant(self, business_center_id: str, user_id: str, *roles: str) -> None: ...

    def expired(self, user_id: str) -> str: ...

    def forged(self, user_id: str) -> str: ...

    async def revoked_key(self, user_id: str) -> str: ...


def _session(key: tokens.Ed25519PrivateKey, key_id: str, user_id: str, issued_at: datetime, lifetime: timedelta) -> str:
    claims = tokens.SessionClaims(user_id=user_id, session_id=str(uuid.uuid4()), issued_at=issued_at,
                                  expires_at=issued_at + lifetime)
    return tokens.sign_session(key, key_id, claims)


@dataclass
class ReplicatedPeople:
    """People published on the world's identity topic (`TestIdentity`), replicated by every service."""

    identity: TestIdentity
    replicas: list[asyncpg.Pool]
    platform: str = PLATFORM

    async def person(self, name: str) -> Person:
        person = await self.identity.person(name, replicas=self.replicas)
        return Person(person.user_id, person.token)

    async def integration(self, name: str, scopes: Sequence[str]) -> Person:
        person = await self.identity.integration(name, scopes=scopes, replicas=self.replicas)
        return Person(person.user_id, person.token)

    async def grant(self, business_center_id: str, user_id: str, *roles: str) -> None:
        await self.identity.grant(business_center_id, user_id, *roles, replicas=self.replicas)

    def expired(self, user_id: str) -> str:
        now = self.identity.clock.now()
        return _session(self.identity.key, self.identity.key_id, user_id, now - timedelta(hours=2), timedelta(hours=1))

    def forged(self, user_id: str) -> str:
        # The platform's key id, a key the platform never published.
        return _session(tokens.new_signing_key(), self.identity.key_id, user_id, self.identity.clock.now(),
                        timedelta(days=1))

    async def revoked_key(self, user_id: str) -> str:
        return await self.identity.api_key(user_id, revoked=True, replicas=self.replicas)


@dataclass
class Part:
    """One service running in the world."""

    name: str
    runtime: ServiceRuntime
    client: httpx.AsyncClient

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    @property
    def schema(self) -> str:
        return self.runtime.settings.schema

    @property
    def group(self) -> str:
        return self.runtime.settings.consumer_group


@dataclass
class World:
    service: str
    stack: Stack
    clock: ManualClock
    parts: dict[str, Part]
    people: People
    ledger_schema: str | None
    #: Opens a Business Center whose first Admin is `admin` (as the platform does: the wallet's API,
    #: or for the identity service, the wallet's event it reads).
    open_business_center: Callable[[World, Person], Awaitable[str]]
    #: Tables a refused request changes by design, with the reason (left out of the snapshot).
    changed_by_refusals: dict[str, str] = field(default_factory=dict)
    _tables: list[str] = field(default_factory=list)
    _kafka: AIOKafkaConsumer | None = None
    _snapshot_conn: asyncpg.Connection | None = None
    _snapshot_query: str = ""

    @property
    def subject(self) -> Part:
        return self.parts[self.service]

    @property
    def base_url(self) -> str:
        return str(self.subject.client.base_url).rstrip("/")

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.stack.database_url)

    # The stored state ----------------------------------------------------------------------------------

    async def _list_tables(self) -> list[str]:
        schemas = [part.schema for part in self.parts.values()] + ([self.ledger_schema] if self.ledger_schema else [])
        conn = await self.connect()
        try:
            rows = await conn.fetch(
                """select table_schema, table_name from information_schema.tables
                   where table_schema = any($1::text[]) and table_type = 'BASE TABLE'
                   order by table_schema, table_name""",
                schemas,
            )
        finally:
            await conn.close()
        names = [f"{row['table_schema']}.{row['table_name']}" for row in rows]
        return [name for name in names if name.split(".", 1)[1] not in self.changed_by_refusals]

    async def snapshot(self) -> dict[str, tuple[int, str]]:
        """Every table as (rows, digest of its rows): two equal snapshots mean nothing was stored,
        changed or removed in between (the ledger's totals and transfers included)."""
        if not self._tables:
            self._tables = await self._list_tables()
            self._snapshot_query = " union all ".join(
                f"select '{name}' as name, count(*) as rows,"
                f" coalesce(md5(string_agg(md5(t::text), '' order by md5(t::text))), '') as digest from {name} t"
                for name in self._tables
            )
        if self._snapshot_conn is None:
            self._snapshot_conn = await self.connect()
        rows = await self._snapshot_conn.fetch(self._snapshot_query)
        return {row["name"]: (row["rows"], row["digest"]) for row in rows}

    async def ledger_totals(self) -> dict[str, Any]:
        """The ledger's accounts' totals and its transfer count, for a message a person reads."""
        if self.ledger_schema is None:
            return {}
        conn = await self.connect()
        try:
            row = await conn.fetchrow(
                f"""select (select count(*) from {self.ledger_schema}.transfers) as transfers,
                           (select coalesce(sum(debits_posted_micros), 0) from {self.ledger_schema}.accounts) as posted,
                           (select coalesce(sum(debits_pending_micros), 0) from {self.ledger_schema}.accounts) as pending"""
            )
        finally:
            await conn.close()
        return dict(row) if row else {}

    # Quiet worlds ----------------------------------------------------------------------------------------

    @asynccontextmanager
    async def relays_paused(self) -> AsyncIterator[None]:
        """Hold every relay's advisory lock (the one an instance takes to publish its schema's
        outbox): rows stay in the outboxes until the block ends, then they go out in order."""
        connections: list[asyncpg.Connection] = []
        transactions = []
        try:
            for part in self.parts.values():
                conn = await self.connect()
                connections.append(conn)
                transaction = conn.transaction()
                await transaction.start()
                transactions.append(transaction)
                await conn.execute("select pg_advisory_xact_lock(hashtext($1))", part.runtime.relay.channel)
            yield
        finally:
            for transaction in transactions:
                await transaction.rollback()
            for conn in connections:
                await conn.close()

    async def settle(self, timeout_s: float = 60.0) -> None:
        """Until every outbox is empty and every consumer applied everything on its topics, twice in a row."""
        last: list[Any] = []

        async def quiet() -> bool:
            state = await self._progress()
            if state is None:
                last.clear()
                return False
            if last and last[0] == state:
                return True
            last[:] = [state]
            return False

        await until(quiet, f"the {self.service} world quiet (outboxes empty, consumers caught up)", timeout_s=timeout_s,
                    interval_s=0.05)

    async def _progress(self) -> tuple[Any, ...] | None:
        consumer = await self._offsets_reader()
        partitions: list[TopicPartition] = []
        for part in self.parts.values():
            for topic in sorted({subscription.topic for subscription in part.runtime.subscriptions}):
                numbers = consumer.partitions_for_topic(topic) or set()
                partitions += [TopicPartition(topic, number) for number in sorted(numbers)]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        conn = await self.connect()
        try:
            for part in self.parts.values():
                if await conn.fetchval(f"select count(*) from {part.schema}.outbox"):
                    return None
                rows = await conn.fetch(
                    f"select topic, partition, next_offset from {part.schema}.consumer_positions where group_id = $1",
                    part.group,
                )
                stored = {(row["topic"], row["partition"]): row["next_offset"] for row in rows}
                for subscription_topic in {subscription.topic for subscription in part.runtime.subscriptions}:
                    for tp, end in ends.items():
                        if tp.topic == subscription_topic and stored.get((tp.topic, tp.partition), 0) < end:
                            return None
        finally:
            await conn.close()
        return tuple(sorted((tp.topic, tp.partition, end) for tp, end in ends.items()))

    async def _offsets_reader(self) -> AIOKafkaConsumer:
        if self._kafka is None:
            self._kafka = AIOKafkaConsumer(bootstrap_servers=self.stack.kafka_bootstrap_servers, enable_auto_commit=False,
                                           isolation_level="read_committed")
            await self._kafka.start()
            topics = sorted({s.topic for part in self.parts.values() for s in part.runtime.subscriptions})
            consumer = self._kafka

            async def known() -> bool:
                await consumer._client.force_metadata_update()  # noqa: SLF001 - the topics were just created
                return all(consumer.partitions_for_topic(topic) for topic in topics)

            await until(known, f"the partitions of {topics}", timeout_s=30)
        return self._kafka

    async def close(self) -> None:
        if self._snapshot_conn is not None:
            await self._snapshot_conn.close()
            self._snapshot_conn = None
        if self._kafka is not None:
            await self._kafka.stop()
            self._kafka = None


# Topics ------------------------------------------------------------------------------------------------------


class Topics:
    """The world's private topics, one partition each (a total order, so "past every offset" is
    one number), each consumed one with its dead-letter topic."""

    def __init__(self, new_topic: TopicFactory) -> None:
        self._new_topic = new_topic

    async def consumed(self, prefix: str) -> str:
        name = await self._new_topic(prefix, partitions=1)
        await self._new_topic.create(dead_letter_topic(name), partitions=1)
        return name

    async def produced(self, prefix: str) -> str:
        return await self._new_topic(prefix, partitions=1)


# The wallet, the base of every world that moves money -----------------------------------------------------


@dataclass(frozen=True)
class WalletTopics:
    commands: str
    events: str
    invoicing_events: str
    campaign_events: str
    balances: str


async def _wallet_part(stack: Stack, topics: Topics, identity: TestIdentity, clock: ManualClock, ledger_schema: str,
                       exit_stack: AsyncExitStack) -> tuple[Part, WalletTopics]:
    from adledger_wallet.config import Settings
    from adledger_wallet.inject import build

    wallet_topics = WalletTopics(
        commands=await topics.consumed("wallet-commands"), events=await topics.consumed("wallet-events"),
        invoicing_events=await topics.consumed("invoicing-events"), campaign_events=await topics.consumed("campaign-events"),
        balances=await topics.consumed("balances"),
    )
    settings = Settings(
        database_url=stack.database_url, kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_fuzz_wallet"), ledger_schema=ledger_schema, http_port=free_port(),
        identity_events_topic=identity.topic, commands_topic=wallet_topics.commands, events_topic=wallet_topics.events,
        invoicing_events_topic=wallet_topics.invoicing_events, campaign_events_topic=wallet_topics.campaign_events,
        balances_topic=wallet_topics.balances, kafka_consumer_group=unique("fuzz-wallet"), outbox_poll_interval_ms=100,
        day_close_poll_interval_ms=NEVER_MS, hold_expiry_poll_interval_ms=NEVER_MS,
    )
    runtime = build(settings, clock)
    client = await exit_stack.enter_async_context(running(runtime, stack, drop_schemas=[ledger_schema]))
    return Part("wallet", runtime, client), wallet_topics


async def _open_in_wallet(world: World, admin: Person) -> str:
    """The platform opens a Business Center in the wallet; the identity service makes its admin its
    Admin when it reads the wallet's event (here the world's identity does it)."""
    business_center_id = unique("bc")
    body = {"id": business_center_id, "name": "Acme", "currency": "USD", "credit_limit_micros": 5 * USD,
            "admin_user_id": admin.user_id}
    answer = await world.parts["wallet"].client.post(
        "/v1/business-centers", json=body,
        headers={"Authorization": f"Bearer {world.people.platform}", "Idempotency-Key": unique("key")},
    )
    assert answer.status_code == 201, answer.text
    await world.people.grant(business_center_id, admin.user_id, "admin")
    return business_center_id


async def pay(world: World, owner_id: str, amount_micros: int, *, invoice_id: str | None = None) -> None:
    """A paid invoice, as the invoicing service publishes it (signed), on the world's topic."""
    topic = world.parts["wallet"].runtime.settings.invoicing_events_topic  # type: ignore[attr-defined]
    event = InvoicePaid(invoice_id=invoice_id or unique("inv"), owner_id=owner_id, amount_micros=amount_micros,
                        currency="USD", paid_at=world.clock.now())
    await produce(world.stack.kafka_bootstrap_servers, topic, [encoded(event, owner_id, topic=topic)])


async def wallet_call(world: World, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if method != "GET":
        headers["Idempotency-Key"] = unique("key")
    return await world.parts["wallet"].client.request(method, path, json=body, headers=headers)


async def balance_until(world: World, owner_id: str, real_micros: int) -> None:
    async def paid() -> bool:
        answer = await wallet_call(world, "GET", f"/v1/balances/{owner_id}", world.people.platform)
        return answer.status_code == 200 and answer.json()["real_micros"] == real_micros

    await until(paid, f"{owner_id} holding {real_micros} micros", timeout_s=30)


# Worlds ------------------------------------------------------------------------------------------------------


@asynccontextmanager
async def _money_world(
    service: str, stack: Stack, new_topic: TopicFactory,
    extra: Callable[..., Awaitable[Part | list[Part] | None]] | None = None,
) -> AsyncIterator[World]:
    """The wallet (and `extra`, the services beside it on its topics) with the world's identity."""
    clock = ManualClock(WORLD_START)
    topics = Topics(new_topic)
    identity = await TestIdentity.create(stack, new_topic, clock)
    # Every service of the world consumes the identity topic: its dead letters go to its own topic.
    await new_topic.create(dead_letter_topic(identity.topic), partitions=1)
    ledger_schema = unique("t_fuzz_ledger")
    async with AsyncExitStack() as exit_stack:
        wallet, wallet_topics = await _wallet_part(stack, topics, identity, clock, ledger_schema, exit_stack)
        parts = {"wallet": wallet}
        if extra is not None:
            part = await extra(stack=stack, topics=topics, identity=identity, clock=clock, wallet_topics=wallet_topics,
                               ledger_schema=ledger_schema, exit_stack=exit_stack)
            for one in part if isinstance(part, list) else [part] if part is not None else []:
                parts[one.name] = one
        # The services that verify callers replicate the identity (the spend consumer has no API).
        replicas = [part.pool for part in parts.values()
                    if any(s.topic == identity.topic for s in part.runtime.subscriptions)]
        for pool in replicas:
            await identity.replicated(pool)
        people = ReplicatedPeople(identity, replicas)
        world = World(service, stack, clock, parts, people, ledger_schema, _open_in_wallet)
        try:
            yield world
        finally:
            await world.close()


async def _campaign_part(*, stack: Stack, topics: Topics, identity: TestIdentity, clock: ManualClock,
                         wallet_topics: WalletTopics, exit_stack: AsyncExitStack, **_: Any) -> Part:
    from adledger_campaign.config import Settings
    from adledger_campaign.inject import build

    settings = Settings(
        database_url=stack.database_url, kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_fuzz_campaign"), http_port=free_port(), identity_events_topic=identity.topic,
        events_topic=wallet_topics.campaign_events, wallet_events_topic=wallet_topics.events,
        wallet_commands_topic=wallet_topics.commands, invoicing_commands_topic=await topics.produced("invoicing-commands"),
        spend_posted_topic=await topics.consumed("spend-posted"), delivery_control_topic=await topics.consumed("delivery"),
        kafka_consumer_group=unique("fuzz-campaign"), outbox_poll_interval_ms=100, deadline_poll_interval_ms=NEVER_MS,
    )
    runtime = build(settings, clock)
    client = await exit_stack.enter_async_context(running(runtime, stack))
    return Part("campaign", runtime, client)


async def _escrow_part(*, stack: Stack, topics: Topics, identity: TestIdentity, clock: ManualClock,
                       wallet_topics: WalletTopics, exit_stack: AsyncExitStack, **_: Any) -> Part:
    from adledger_order_escrow.config import Settings
    from adledger_order_escrow.inject import build

    settings = Settings(
        database_url=stack.database_url, kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_fuzz_escrow"), http_port=free_port(), identity_events_topic=identity.topic,
        wallet_events_topic=wallet_topics.events, wallet_commands_topic=wallet_topics.commands,
        orders_events_topic=await topics.produced("orders-events"), kafka_consumer_group=unique("fuzz-escrow"),
        outbox_poll_interval_ms=100, deadline_poll_interval_ms=NEVER_MS,
    )
    runtime = build(settings, clock)
    client = await exit_stack.enter_async_context(running(runtime, stack))
    return Part("order_escrow", runtime, client)


async def _spend_part(*, stack: Stack, topics: Topics, clock: ManualClock, wallet_topics: WalletTopics,
                      ledger_schema: str, exit_stack: AsyncExitStack, **_: Any) -> Part:
    from adledger_spend_consumer.config import Settings
    from adledger_spend_consumer.inject import build

    settings = Settings(
        database_url=stack.database_url, kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_fuzz_spend"), ledger_schema=ledger_schema, http_port=free_port(),
        spend_topic=await topics.consumed("spend"), wallet_events_topic=wallet_topics.events,
        balances_topic=wallet_topics.balances, campaign_events_topic=wallet_topics.campaign_events,
        delivery_control_topic=await topics.produced("delivery-control"),
        delivery_state_topic=await topics.produced("delivery-state"), spend_posted_topic=await topics.produced("posted"),
        kafka_consumer_group=unique("fuzz-spend"), outbox_poll_interval_ms=100, budget_period_poll_interval_ms=NEVER_MS,
    )
    runtime = build(settings, clock)
    client = await exit_stack.enter_async_context(running(runtime, stack))
    return Part("spend_consumer", runtime, client)


async def _invoicing_part(*, stack: Stack, topics: Topics, identity: TestIdentity, clock: ManualClock,
                          wallet_topics: WalletTopics, ledger_schema: str, exit_stack: AsyncExitStack,
                          **_: Any) -> Part:
    from adledger_invoicing.config import Settings
    from adledger_invoicing.inject import build

    settings = Settings(
        database_url=stack.database_url, kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_fuzz_invoicing"), ledger_schema=ledger_schema, http_port=free_port(),
        identity_events_topic=identity.topic, wallet_events_topic=wallet_topics.events,
        balances_topic=wallet_topics.balances, commands_topic=await topics.consumed("invoicing-commands"),
        spend_posted_topic=await topics.consumed("spend-posted"), events_topic=wallet_topics.invoicing_events,
        payment_webhook_secret=WEBHOOK_SECRET, kafka_consumer_group=unique("fuzz-invoicing"),
        outbox_poll_interval_ms=100, clock_jobs_poll_interval_ms=NEVER_MS,
        # The document fuzzed is the production one: no local provider.
        local_provider_enabled=False,
    )
    runtime = build(settings, clock)
    client = await exit_stack.enter_async_context(running(runtime, stack))
    return Part("invoicing", runtime, client)


WEBHOOK_SECRET = "fuzz-webhook-secret-that-is-long-enough-for-production"


async def _sends_parts(*, stack: Stack, topics: Topics, identity: TestIdentity, clock: ManualClock,
                       ledger_schema: str, exit_stack: AsyncExitStack, **more: Any) -> list[Part]:
    """Invoicing (the funding sources, which reads the sends service's `ChargeFundingSource`) and the
    sends service, built as the sends tests build it (`tests/integration/sends/building.py`)."""
    from adledger_sends.inject import build

    from ..sends.building import sends_settings

    invoicing = await _invoicing_part(stack=stack, topics=topics, identity=identity, clock=clock,
                                      ledger_schema=ledger_schema, exit_stack=exit_stack, **more)
    settings = sends_settings(
        stack, ledger_schema=ledger_schema, identity_topic=identity.topic, events_topic=await topics.produced("sends"),
        invoicing_commands_topic=invoicing.runtime.settings.commands_topic,  # type: ignore[attr-defined]
        database_schema=unique("t_fuzz_sends"), kafka_consumer_group=unique("fuzz-sends"),
        schedule_poll_interval_ms=NEVER_MS,
    )
    runtime = build(settings, clock)
    client = await exit_stack.enter_async_context(running(runtime, stack))
    return [invoicing, Part("sends", runtime, client)]


# The identity service, whose world is its own identity ------------------------------------------------------


IDENTITY_PLATFORM = "fuzz-platform-token-that-is-long-enough-for-production"
PASSWORD = "correct horse battery staple"


@dataclass
class IdentityServicePeople:
    """People made through the identity service's own API (it is the world's identity)."""

    client: httpx.AsyncClient
    key: tokens.Ed25519PrivateKey
    key_id: str
    clock: ManualClock
    #: Publishes the operator's bootstrap key again, as a restart does (`ensure_platform_operator`).
    restore: Callable[[], Awaitable[None]] | None = None
    platform: str = IDENTITY_PLATFORM

    async def restore_platform(self) -> None:
        """The OpenAPI fuzz may revoke the operator's own key (it may: an operator revokes keys, and
        the stateful phase follows GET /v1/users/me to its keys and to DELETE): the next part's
        tenant starts with it valid again, as after a restart."""
        if self.restore is not None:
            await self.restore()

    async def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.platform}", "Idempotency-Key": unique("key")}
        return await self.client.request(method, path, json=body, headers=headers)

    async def person(self, name: str) -> Person:
        user_id = unique(name)
        answer = await self._call("POST", "/v1/users", {"id": user_id, "name": name, "password": PASSWORD})
        assert answer.status_code == 201, answer.text
        signed_in = await self.client.post("/v1/sessions", json={"user_id": user_id, "password": PASSWORD})
        assert signed_in.status_code == 201, signed_in.text
        return Person(user_id, str(signed_in.json()["token"]))

    async def integration(self, name: str, scopes: Sequence[str]) -> Person:
        user_id = unique(name)
        answer = await self._call("POST", "/v1/users", {"id": user_id, "name": name, "kind": "integration"})
        assert answer.status_code == 201, answer.text
        issued = await self._call("POST", "/v1/api-keys", {"user_id": user_id, "name": "fuzz", "scopes": list(scopes)})
        assert issued.status_code == 201, issued.text
        return Person(user_id, str(issued.json()["token"]))

    async def grant(self, business_center_id: str, user_id: str, *roles: str) -> None:
        for role in roles:
            answer = await self._call("PUT", f"/v1/business-centers/{business_center_id}/members/{user_id}", {"role": role})
            assert answer.status_code == 200, answer.text

    def expired(self, user_id: str) -> str:
        return _session(self.key, self.key_id, user_id, self.clock.now() - timedelta(hours=2), timedelta(hours=1))

    def forged(self, user_id: str) -> str:
        return _session(tokens.new_signing_key(), self.key_id, user_id, self.clock.now(), timedelta(hours=1))

    async def revoked_key(self, user_id: str) -> str:
        issued = await self._call("POST", "/v1/api-keys", {"user_id": user_id, "name": "revoked"})
        assert issued.status_code == 201, issued.text
        revoked = await self._call("DELETE", f"/v1/api-keys/{issued.json()['key_id']}")
        assert revoked.status_code == 200, revoked.text
        return str(issued.json()["token"])


async def _open_in_identity(world: World, admin: Person) -> str:
    """The wallet's `BusinessCenterOpened` on the identity's wallet topic: the identity service
    makes the admin its Admin (W9)."""
    business_center_id = unique("bc")
    event = BusinessCenterOpened(business_center_id=business_center_id, currency="USD", credit_limit_micros=0,
                                 opened_at=world.clock.now(), admin_user_id=admin.user_id)
    topic = world.subject.runtime.settings.wallet_events_topic  # type: ignore[attr-defined]
    envelope = encode(event, key=business_center_id, trace_id="fuzz")
    await produce(world.stack.kafka_bootstrap_servers, topic, [(envelope.key, envelope.value, list(envelope.headers))])

    async def admin_there() -> bool:
        answer = await world.subject.client.get(f"/v1/users/{admin.user_id}",
                                                headers={"Authorization": f"Bearer {world.people.platform}"})
        return answer.status_code == 200 and answer.json()["roles"].get(business_center_id) == ["admin"]

    await until(admin_there, f"{admin.user_id} the Admin of {business_center_id}", timeout_s=30)
    return business_center_id


@asynccontextmanager
async def identity_world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> AsyncIterator[World]:
    from adledger_identity.adapters.keys import load_signing_keys
    from adledger_identity.config import Settings
    from adledger_identity.inject import wire

    clock = ManualClock(WORLD_START)
    topics = Topics(new_topic)
    signing = load_signing_keys(tmp_path / "identity-keys", make_first=True)
    settings = Settings(
        database_url=stack.database_url, kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_fuzz_identity"), http_port=free_port(), platform_token=IDENTITY_PLATFORM,
        identity_events_topic=await topics.produced("identity"), wallet_events_topic=await topics.consumed("wallet-events"),
        kafka_consumer_group=unique("fuzz-identity"), outbox_poll_interval_ms=100,
        # The fuzz signs in often; the brake is proven by the identity's own tests.
        sign_in_failures_allowed=1_000_000,
    )
    service = wire(settings, clock, signing)
    async with running(service.runtime, stack) as client:
        async def restore() -> None:
            from adledger_libs.outbox import unit_of_work

            async with unit_of_work(service.runtime.pool, service.runtime.relay) as uow:
                await service.identity.ensure_platform_operator(uow, IDENTITY_PLATFORM)

        people = IdentityServicePeople(client, signing.active, signing.active_key_id, clock, restore)
        world = World(
            "identity", stack, clock, {"identity": Part("identity", service.runtime, client)}, people, None,
            _open_in_identity,
            changed_by_refusals={
                "sign_in_failures": "a refused sign-in is counted, by design: it is the brute-force brake",
            },
        )
        try:
            yield world
        finally:
            await world.close()


def wallet_world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> Any:
    return _money_world("wallet", stack, new_topic)


def campaign_world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> Any:
    return _money_world("campaign", stack, new_topic, _campaign_part)


def escrow_world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> Any:
    return _money_world("order_escrow", stack, new_topic, _escrow_part)


def invoicing_world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> Any:
    return _money_world("invoicing", stack, new_topic, _invoicing_part)


def sends_world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> Any:
    return _money_world("sends", stack, new_topic, _sends_parts)


def spend_world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> Any:
    return _money_world("spend_consumer", stack, new_topic, _spend_part)


# Tenants ----------------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    """A Business Center with a person in each role, its resources, and a user of another one."""

    business_center_id: str
    members: dict[str, Person]
    outsider: Person
    other_business_center_id: str
    #: The tenant's real resources by the path parameter that names them.
    resources: dict[str, str] = field(default_factory=dict)
    #: Values the request bodies of the matrix name (the tenant's ad account, a seller, ...).
    values: dict[str, str] = field(default_factory=dict)
    #: Body fields the fuzz sets to a real value in part of its valid cases, so they reach real code.
    body_values: dict[str, Any] = field(default_factory=dict)


async def base_tenant(world: World) -> Tenant:
    people = world.people
    members = {role: await people.person(role.replace("_", "-")) for role in ROLES}
    outsider = await people.person("outsider")
    business_center_id = await world.open_business_center(world, members["admin"])
    for role in ROLES[1:]:
        await people.grant(business_center_id, members[role].user_id, role)
    other_business_center_id = await world.open_business_center(world, outsider)
    return Tenant(business_center_id, members, outsider, other_business_center_id,
                  resources={"business_center_id": business_center_id, "owner_id": business_center_id},
                  body_values={"currency": "USD", "admin_user_id": members["admin"].user_id,
                               "user_id": members["analyst"].user_id, "business_center_id": business_center_id})


async def wallet_tenant(world: World) -> Tenant:
    """A Business Center with an auction and a prepaid ad account, 100 USD paid in, vouchers."""
    tenant = await base_tenant(world)
    admin = tenant.members["admin"].token
    accounts = []
    for kind, billing in (("auction", "monthly_invoicing"), ("reservation", "prepaid")):
        account = unique("acc")
        answer = await wallet_call(world, "POST", f"/v1/business-centers/{tenant.business_center_id}/ad-accounts", admin,
                                   {"id": account, "name": "Acme", "type": kind, "billing_option": billing})
        assert answer.status_code == 201, answer.text
        accounts.append(account)
    await pay(world, tenant.business_center_id, 100 * USD)
    await pay(world, accounts[1], 20 * USD)
    await balance_until(world, tenant.business_center_id, 100 * USD)
    await balance_until(world, accounts[1], 20 * USD)
    granted = await wallet_call(world, "POST", f"/v1/business-centers/{tenant.business_center_id}/vouchers",
                                world.people.platform, {"amount_micros": 3 * USD})
    assert granted.status_code == 200, granted.text
    tenant.resources["ad_account_id"] = accounts[0]
    tenant.values.update(auction_account=accounts[0], prepaid_account=accounts[1])
    tenant.body_values.update(ad_account_id=accounts[1], owner_id=tenant.business_center_id)
    return tenant


async def campaign_tenant(world: World) -> Tenant:
    """The wallet's tenant, known to the campaign service, with a drawdown and a prepaid campaign."""
    tenant = await wallet_tenant(world)
    campaign = world.parts["campaign"]
    operator = tenant.members["operator"].token
    campaign_ids = []
    for funding_mode in ("drawdown", "prepaid"):
        body = {"ad_account_id": tenant.values["prepaid_account"], "name": "Winter sale", "funding_mode": funding_mode,
                "budget_micros": 10 * USD, "ends_at": (world.clock.now() + timedelta(days=30)).isoformat()}

        async def created(body: dict[str, Any] = body) -> httpx.Response | None:
            answer = await campaign.client.post("/v1/campaigns", json=body, headers={
                "Authorization": f"Bearer {operator}", "Idempotency-Key": unique("key")})
            return None if answer.status_code == 404 else answer  # until the wallet's AdAccountOpened arrived

        answer = await until(created, "the campaign service knows the ad account", timeout_s=30)
        assert answer.status_code == 201, answer.text
        campaign_ids.append(str(answer.json()["id"]))
    capped = await campaign.client.put(
        f"/v1/ad-accounts/{tenant.values['prepaid_account']}/budget-cap", json={"kind": "monthly", "amount_micros": 50 * USD},
        headers={"Authorization": f"Bearer {tenant.members['admin'].token}", "Idempotency-Key": unique("key")})
    assert capped.status_code == 200, capped.text
    tenant.resources.update(campaign_id=campaign_ids[0], ad_account_id=tenant.values["prepaid_account"])
    tenant.values.update(drawdown_campaign=campaign_ids[0], prepaid_campaign=campaign_ids[1])
    return tenant


async def escrow_tenant(world: World) -> Tenant:
    """The wallet's tenant as a buyer, a seller's Business Center and channel, and an order."""
    tenant = await wallet_tenant(world)
    escrow = world.parts["order_escrow"]
    seller_admin = await world.people.person("seller-admin")
    seller_business_center_id = await world.open_business_center(world, seller_admin)
    seller = await world.people.integration("seller", scopes=["orders"])
    for owner in (tenant.business_center_id, seller_business_center_id):
        async def known(owner: str = owner) -> bool:
            return bool(await escrow.pool.fetchval("select true from owners where owner_id = $1", owner))

        await until(known, f"order_escrow learnt {owner}", timeout_s=30)
    channel_id = unique("channel")
    answer = await escrow.client.post("/v1/channels", json={
        "id": channel_id, "name": "Gaming Weekly", "seller_user_id": seller.user_id, "owner_id": seller_business_center_id,
        "currency": "USD"}, headers={"Authorization": f"Bearer {world.people.platform}", "Idempotency-Key": unique("key")})
    assert answer.status_code == 201, answer.text
    placed = await escrow.client.post("/v1/orders", json={
        "channel_id": channel_id, "buyer_owner_id": tenant.business_center_id, "price_micros": USD, "currency": "USD"},
        headers={"Authorization": f"Bearer {tenant.members['admin'].token}", "Idempotency-Key": unique("key")})
    assert placed.status_code == 201, placed.text
    tenant.resources["order_id"] = str(placed.json()["id"])
    tenant.body_values.update(channel_id=channel_id, buyer_owner_id=tenant.business_center_id,
                              owner_id=seller_business_center_id, seller_user_id=seller.user_id)
    tenant.values.update(channel_id=channel_id, seller_token=seller.token, seller_user_id=seller.user_id,
                         seller_business_center_id=seller_business_center_id)
    return tenant


async def invoicing_tenant(world: World) -> Tenant:
    """The wallet's tenant, subscribed, with an open top-up invoice and a funding source."""
    tenant = await wallet_tenant(world)
    invoicing = world.parts["invoicing"]
    platform = world.people.platform
    bc = tenant.business_center_id

    async def call(method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        return await invoicing.client.request(method, path, json=body, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": unique("key")})

    answer = await call("PUT", f"/v1/subscriptions/{bc}", platform, {"status": "active"})
    assert answer.status_code == 200, answer.text

    async def invoiced() -> httpx.Response | None:
        found = await call("POST", "/v1/top-ups", tenant.members["finance_manager"].token,
                           {"owner_id": bc, "currency": "USD", "amount_micros": 7 * USD})
        return None if found.status_code in (404, 409) else found  # until invoicing learnt the owner and balance

    answer = await until(invoiced, "invoicing knows the Business Center", timeout_s=30)
    assert answer.status_code == 201, answer.text
    source = unique("fs")
    registered = await call("POST", "/v1/funding-sources", platform,
                            {"id": source, "name": "Partner", "kind": "prepaid_invoice", "currency": "USD"})
    assert registered.status_code == 201, registered.text
    tenant.resources.update(invoice_id=str(answer.json()["invoice"]["id"]), funding_source_id=source, owner_id=bc)
    tenant.body_values.update(owner_id=bc)
    tenant.values.update(funding_source_id=source)
    return tenant


async def sends_tenant(world: World) -> Tenant:
    """The tenant's account in the sends service: a prepaid funding source (the default and its team's),
    balances for its Admin, Operator and Analyst, a send campaign of each charge setting, an integration
    with a `sends`-scoped API key, and that integration's send awaiting an Admin's approval (U1-U5)."""
    from ..sends.building import attach_funding_source, command, register_funding_source

    tenant = await base_tenant(world)
    sends = world.parts["sends"].client
    platform = world.people.platform
    bc = tenant.business_center_id
    admin = tenant.members["admin"].token

    async def ok(method: str, path: str, token: str, body: Any) -> dict[str, Any]:
        answer = await command(sends, method, path, token, body)
        assert answer.status_code < 300, answer.text
        return dict(answer.json())

    source = await register_funding_source(world.parts["invoicing"].client, platform)
    await attach_funding_source(sends, platform, source, bc)
    await ok("PUT", f"/v1/business-centers/{bc}/default-funding-source", admin, {"funding_source_id": source})
    team = unique("team")
    await ok("POST", "/v1/teams", admin, {"id": team, "business_center_id": bc, "name": "Sales",
                                          "funding_source_id": source})
    for role in ("admin", "operator", "analyst"):
        await ok("PUT", f"/v1/business-centers/{bc}/user-balances/{tenant.members[role].user_id}", admin,
                 {"team_id": team, "budget_micros": 50 * USD, "mode": "refresh", "schedule": "monthly"})
    campaigns = {}
    for charge_to in ("user_balance", "funding_source"):
        campaigns[charge_to] = unique("camp")
        await ok("POST", "/v1/send-campaigns", admin, {
            "id": campaigns[charge_to], "business_center_id": bc, "name": "Thank-you gifts", "charge_to": charge_to,
            **({"funding_source_id": source} if charge_to == "funding_source" else {})})
    integration = await world.people.integration("crm", scopes=["sends"])
    await world.people.grant(bc, integration.user_id, "operator")
    waiting = await ok("POST", "/v1/sends", integration.token, {
        "campaign_id": campaigns["funding_source"], "item_kind": "egift", "description": "Coffee card",
        "price_micros": 2 * USD})
    assert waiting["state"] == "awaiting_approval", waiting
    # A source registered with invoicing and not attached yet: what the operator's attach names (`id`).
    unattached = await register_funding_source(world.parts["invoicing"].client, platform)
    tenant.resources.update(user_id=tenant.members["analyst"].user_id, send_id=str(waiting["id"]))
    tenant.body_values.update(campaign_id=campaigns["user_balance"], funding_source_id=source, team_id=team,
                              id=unattached)
    tenant.values.update(funding_source_id=source, team_id=team, integration_token=integration.token,
                         user_balance_campaign=campaigns["user_balance"],
                         funding_source_campaign=campaigns["funding_source"])
    return tenant


async def identity_tenant(world: World) -> Tenant:
    """The Business Center's people, a member whose roles and keys the calls act on, and an API key."""
    people = world.people
    assert isinstance(people, IdentityServicePeople)
    await people.restore_platform()
    tenant = await base_tenant(world)
    target = await world.people.person("target")
    await world.people.grant(tenant.business_center_id, target.user_id, "analyst")
    issued = await people._call("POST", "/v1/api-keys", {"user_id": target.user_id, "name": "target's key"})  # noqa: SLF001
    assert issued.status_code == 201, issued.text
    # An operator of the tenant's own for the OpenAPI fuzz, which may disable it or revoke its keys
    # (the world's operator stays valid for every other part).
    operator_id = unique("fuzz-operator")
    made = await people._call("POST", "/v1/users", {"id": operator_id, "name": "Fuzz operator",  # noqa: SLF001
                                                     "kind": "integration", "platform_operator": True})
    assert made.status_code == 201, made.text
    key = await people._call("POST", "/v1/api-keys", {"user_id": operator_id, "name": "fuzz"})  # noqa: SLF001
    assert key.status_code == 201, key.text
    tenant.values["fuzz_operator_token"] = str(key.json()["token"])
    tenant.resources.update(user_id=target.user_id, key_id=str(issued.json()["key_id"]))
    tenant.body_values["user_id"] = target.user_id
    tenant.values.update(target_token=target.token)
    return tenant


# The registry: one entry per service -------------------------------------------------------------------------


@dataclass(frozen=True)
class Kit:
    name: str
    world: Callable[[Stack, TopicFactory, Path], Any]
    tenant: Callable[[World], Awaitable[Tenant]]
    #: The service's OpenAPI document (`adledger_<service>.inject.openapi()`); None: no HTTP API.
    openapi: Callable[[], dict[str, Any]] | None


def _openapi(module: str) -> Callable[[], dict[str, Any]]:
    def document() -> dict[str, Any]:
        import importlib

        found: dict[str, Any] = importlib.import_module(f"adledger_{module}.inject").openapi()
        return json.loads(json.dumps(found))

    return document


KITS: dict[str, Kit] = {
    "identity": Kit("identity", identity_world, identity_tenant, _openapi("identity")),
    "wallet": Kit("wallet", wallet_world, wallet_tenant, _openapi("wallet")),
    "campaign": Kit("campaign", campaign_world, campaign_tenant, _openapi("campaign")),
    "order_escrow": Kit("order_escrow", escrow_world, escrow_tenant, _openapi("order_escrow")),
    "invoicing": Kit("invoicing", invoicing_world, invoicing_tenant, _openapi("invoicing")),
    "sends": Kit("sends", sends_world, sends_tenant, _openapi("sends")),
    "spend_consumer": Kit("spend_consumer", spend_world, wallet_tenant, None),
}
HTTP_SERVICES = [name for name, kit in KITS.items() if kit.openapi is not None]


async def delete_world_groups(stack: Stack, world: World) -> None:
    """The world's consumer groups, once its services stopped (a session's world outlives the
    per-test clean-up in conftest)."""
    tags = {part.group.rsplit("_", 1)[-1] for part in world.parts.values()}
    try:
        await asyncio.to_thread(delete_consumer_groups, stack.kafka_bootstrap_servers, tags, timeout_s=10.0)
    except Exception:  # noqa: BLE001 - clean-up never fails a run
        pass
