"""The sends service beside the wallet (the ledger's owner), the spend consumer and invoicing, on
the real Kafka and PostgreSQL, sharing one ManualClock (T1). Invoicing reads its commands, the
sends service's signed `ChargeFundingSource` among them, from a topic of the world's own; the sends
service publishes its events on one too. One account (a Business Center id with an Admin) per test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from adledger_sends.inject import Service, wire

from ..conftest import Stack, TopicFactory, unique
from ..identity_world import PLATFORM, Person
from ..invoicing.conftest import Billing, billing_world
from ..kafka_io import read_all
from ..waits import free_port, until
from .building import attach_funding_source, register_funding_source, sends_settings

USD = 1_000_000


@dataclass
class SendsWorld:
    billing: Billing
    service: Service
    client: httpx.AsyncClient
    schema: str
    events_topic: str

    @property
    def pool(self) -> Any:
        return self.service.runtime.pool

    async def call(self, method: str, path: str, token: str, body: Any = None, key: str | None = None) -> httpx.Response:
        return await self.billing.call(self.client, method, path, token, body, key)

    async def ok(self, method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
        answer = await self.call(method, path, token, body)
        assert answer.status_code < 300, answer.text
        return dict(answer.json())

    async def account(self) -> tuple[str, Person]:
        """A new account (Business Center id) and its Admin, known to the sends service."""
        business_center = unique("bc")
        identity = self.billing.identity
        assert identity is not None
        admin = await identity.person("admin", replicas=[self.pool])
        await identity.grant(business_center, admin.user_id, "admin", replicas=[self.pool])
        return business_center, admin

    async def member(self, business_center: str, name: str, role: str = "operator") -> Person:
        identity = self.billing.identity
        assert identity is not None
        person = await identity.person(name, replicas=[self.pool])
        await identity.grant(business_center, person.user_id, role, replicas=[self.pool])
        return person

    async def integration(self, business_center: str, scopes: tuple[str, ...] = ("sends",)) -> Person:
        identity = self.billing.identity
        assert identity is not None
        person = await identity.integration("crm", scopes=scopes, replicas=[self.pool])
        await identity.grant(business_center, person.user_id, "operator", replicas=[self.pool])
        return person

    async def funding_source(self, business_center: str, kind: str = "prepaid_invoice", *, prepaid_micros: int = 0
                             ) -> str:
        """A funding source registered with invoicing (I6), attached to the account, optionally prefunded."""
        source = await register_funding_source(self.billing.invoicing, PLATFORM, kind)
        if prepaid_micros:
            top_up = await self.billing.call(self.billing.invoicing, "POST", f"/v1/funding-sources/{source}/top-ups",
                                             PLATFORM, {"amount_micros": prepaid_micros})
            assert top_up.status_code < 300, top_up.text
            await self.billing.provider(top_up.json()["id"], "pay")
            await self.source_balance_until(source, prepaid_micros)
        await attach_funding_source(self.client, PLATFORM, source, business_center, kind)
        return source

    async def source_balance(self, source: str) -> int:
        answer = await self.billing.call(self.billing.invoicing, "GET", f"/v1/funding-sources/{source}", PLATFORM)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["balance_micros"])

    async def source_balance_until(self, source: str, expected: int) -> int:
        async def check() -> bool:
            return await self.source_balance(source) == expected

        try:
            await until(check, f"funding source {source} at {expected}")
            return expected
        except AssertionError as error:
            raise AssertionError(f"{error}: it is {await self.source_balance(source)}") from None

    async def invoices_of(self, source: str) -> list[dict[str, Any]]:
        rows = await self.billing.fetch(
            f"select id, purpose, amount_micros, automatic_collection from {self.billing.invoicing_schema}.invoices"
            " where payer_id = $1 order by issued_at, id", source,
        )
        return [dict(row) for row in rows]

    async def invoices_until(self, source: str, count: int) -> list[dict[str, Any]]:
        async def check() -> list[dict[str, Any]] | None:
            found = await self.invoices_of(source)
            return found if len(found) >= count else None

        await until(check, f"{count} invoices of {source}")
        await asyncio.sleep(0.5)
        return await self.invoices_of(source)

    async def balance(self, business_center: str, user_id: str, token: str) -> dict[str, Any]:
        return await self.ok("GET", f"/v1/business-centers/{business_center}/user-balances/{user_id}", token)

    async def events(self, business_center: str, expect: int) -> list[dict[str, Any]]:
        bootstrap = self.billing.stack.kafka_bootstrap_servers

        async def check() -> list[dict[str, Any]] | None:
            records = await read_all(bootstrap, self.events_topic, expect=0, settle_s=0.2)
            found = [
                {"type": r.headers.get("event-type"), **json.loads(r.value or b"{}")}
                for r in records if r.key is not None and r.key.decode() == business_center
            ]
            return found if len(found) >= expect else None

        return list(await until(check, f"{expect} sends events of {business_center}"))

    async def ledger_sums(self) -> dict[str, int]:
        rows = await self.billing.fetch(
            f"select currency, sum(credits_posted_micros - debits_posted_micros)::bigint as total"
            f" from {self.billing.ledger_schema}.accounts group by currency"
        )
        return {row["currency"]: int(row["total"]) for row in rows}


@pytest_asyncio.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[SendsWorld]:
    async with billing_world(stack, own_commands_topic=True) as billing:
        factory = TopicFactory(stack.kafka_bootstrap_servers)
        events_topic = await factory("sends-events", partitions=3)
        assert billing.identity is not None
        settings = sends_settings(stack, ledger_schema=billing.ledger_schema, identity_topic=billing.identity.topic,
                                  events_topic=events_topic, invoicing_commands_topic=billing.invoicing_commands_topic)
        schema = settings.schema
        service = wire(settings, billing.clock)
        runtime = service.runtime
        await runtime.start()
        stop = asyncio.Event()
        serving = asyncio.ensure_future(runtime.serve(stop))
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.settings.http_port}", timeout=15.0)
        try:
            async def healthy() -> bool:
                if serving.done():
                    serving.result()
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(healthy, "sends healthy", timeout_s=60)
            await billing.identity.replicated(runtime.pool)
            yield SendsWorld(billing, service, client, schema, events_topic)
            assert not serving.done(), "the sends service stopped during the tests"
        finally:
            stop.set()
            await asyncio.gather(serving, return_exceptions=True)
            await client.aclose()
            await runtime.close()
            await billing.fetch(f"drop schema if exists {schema} cascade")


@dataclass
class WithIdentity:
    """The wallet, invoicing and sends beside the real identity service (sign-in, roles, API keys)."""

    billing: Billing
    identity: httpx.AsyncClient
    sends: httpx.AsyncClient

    def urls(self) -> dict[str, str]:
        return {
            "IDENTITY": str(self.identity.base_url).rstrip("/"), "SENDS": str(self.sends.base_url).rstrip("/"),
            "WALLET": str(self.billing.wallet.base_url).rstrip("/"),
            "INVOICING": str(self.billing.invoicing.base_url).rstrip("/"), "PLATFORM": PLATFORM,
        }


@asynccontextmanager
async def with_identity_service(stack: Stack, keys_dir: str) -> AsyncIterator[WithIdentity]:
    from adledger_identity.config import Settings as IdentitySettings
    from adledger_identity.inject import wire as wire_identity

    from ..running import running

    identity_topic = await TopicFactory(stack.kafka_bootstrap_servers)("identity", partitions=1)
    async with billing_world(stack, own_commands_topic=True, identity_topic=identity_topic) as billing:
        common: dict[str, Any] = {
            "profile": "local", "database_url": stack.database_url, "kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
            "outbox_poll_interval_ms": 100, "identity_events_topic": identity_topic,
        }
        identity = wire_identity(IdentitySettings(
            **common, database_schema=unique("t_identity"), http_port=free_port(), platform_token=PLATFORM,
            kafka_consumer_group=unique("identity"), signing_keys_dir=keys_dir,
            wallet_events_topic=billing.wallet_events_topic,
        ), billing.clock)
        sends = wire(sends_settings(
            stack, ledger_schema=billing.ledger_schema, identity_topic=identity_topic, profile="local",
            events_topic=await TopicFactory(stack.kafka_bootstrap_servers)("se"),
            invoicing_commands_topic=billing.invoicing_commands_topic,
        ), billing.clock)
        async with running(identity.runtime, stack) as identity_client, running(sends.runtime, stack) as sends_client:
            yield WithIdentity(billing, identity_client, sends_client)
