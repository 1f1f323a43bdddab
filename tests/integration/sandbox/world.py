"""A sandbox of the whole platform (issue 17): the real identity, wallet, invoicing, order_escrow and
campaign services in-process on the real Kafka and PostgreSQL, all on the sandbox clock
(`ADLEDGER_CLOCK=sandbox`, the world's own `sandbox_clock` schema), each with its own schema, consumer
group and the world's own topics, as `make run` starts them. Tests drive it through HTTP only: people
through the identity service, money through the invoicing service's local payment provider, time
through `POST /v1/sandbox/clock/advance`. A service can be restarted (a new runtime on the same
schema, as after a crash)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from adledger_libs import sandbox_clock
from adledger_libs.runtime import ServiceRuntime

from ..conftest import Stack, TopicFactory, unique
from ..waits import free_port, until

PLATFORM = "local-platform-token"
USD = 1_000_000
TOPICS = (
    "identity.events.v1", "wallet.events.v1", "wallet.commands.v1", "invoicing.events.v1", "invoicing.commands.v1",
    "balances.v1", "campaign.events.v1", "spend.posted.v1", "delivery.control.v1", "orders.events.v1",
)


@dataclass
class Running:
    runtime: ServiceRuntime
    stop: asyncio.Event
    serving: asyncio.Future[None]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(self.serving, return_exceptions=True)
        await self.runtime.close()


@dataclass
class SandboxWorld:
    stack: Stack
    clock_schema: str
    topics: dict[str, str]
    builders: dict[str, Callable[[], ServiceRuntime]]
    ports: dict[str, int]
    running: dict[str, Running] = field(default_factory=dict)
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    # Services --------------------------------------------------------------------------------------

    async def start(self, name: str) -> None:
        runtime = self.builders[name]()
        await runtime.start()
        stop = asyncio.Event()
        self.running[name] = Running(runtime, stop, asyncio.ensure_future(runtime.serve(stop)))
        client = self.clients[name]

        async def healthy() -> bool:
            serving = self.running[name].serving
            if serving.done():
                serving.result()
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await until(healthy, f"{name} healthy", timeout_s=60)

    async def stop(self, name: str) -> None:
        await self.running.pop(name).close()

    async def restart(self, name: str) -> None:
        await self.stop(name)
        await self.start(name)

    def __getitem__(self, name: str) -> httpx.AsyncClient:
        return self.clients[name]

    # HTTP -------------------------------------------------------------------------------------------

    async def call(self, service: str, method: str, path: str, token: str, body: Any = None, *, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if method != "GET":
            headers["Idempotency-Key"] = key or unique("k")
        return await self.clients[service].request(method, path, json=body, headers=headers)

    async def ok(self, service: str, method: str, path: str, token: str, body: Any = None, *, status: int = 200,
                 retry_404: bool = False, key: str | None = None) -> dict[str, Any]:
        """A call that must succeed; `retry_404`: the service learns owners and roles from events a moment later."""
        key = key or unique("k")

        async def attempt() -> dict[str, Any] | None:
            answer = await self.call(service, method, path, token, body, key=key)
            if retry_404 and answer.status_code in (403, 404):
                return None
            assert answer.status_code == status, f"{method} {service}{path}: {answer.status_code} {answer.text}"
            return dict(answer.json()) if answer.content else {}

        return dict(await until(attempt, f"{method} {service}{path}", timeout_s=60))

    async def person(self, name: str, *, kind: str = "person") -> tuple[str, str]:
        """A user of the platform's identity and a credential: a session token (a person), an API key (an integration)."""
        user_id = unique(name)
        password = hashlib.sha256(user_id.encode()).hexdigest()
        body: dict[str, Any] = {"id": user_id, "name": name.title(), "kind": kind}
        if kind == "person":
            body["password"] = password
        await self.ok("identity", "POST", "/v1/users", PLATFORM, body, status=201)
        if kind == "integration":
            issued = await self.ok("identity", "POST", "/v1/api-keys", PLATFORM,
                                   {"user_id": user_id, "name": "sandbox", "scopes": ["*"]}, status=201)
            return user_id, str(issued["token"])
        return user_id, await self.sign_in(user_id)

    async def sign_in(self, user_id: str) -> str:
        """A session lasts an hour of sandbox time: after an advance a person signs in again."""
        password = hashlib.sha256(user_id.encode()).hexdigest()
        answer = await self.clients["identity"].post("/v1/sessions", json={"user_id": user_id, "password": password})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])

    async def business_center(self, admin_user_id: str) -> str:
        business_center_id = unique("bc")
        await self.ok("wallet", "POST", "/v1/business-centers", PLATFORM, {
            "id": business_center_id, "name": "Sandbox BC", "currency": "USD", "admin_user_id": admin_user_id,
        }, status=201, retry_404=True)  # the wallet learns the user from the identity's events a moment later
        return business_center_id

    async def top_up(self, owner_id: str, amount_micros: int) -> None:
        """As a customer: an active subscription, a top-up invoice, paid through the local provider."""
        await self.ok("invoicing", "PUT", f"/v1/subscriptions/{owner_id}", PLATFORM, {"status": "active"}, retry_404=True)
        answer = await self.ok("invoicing", "POST", "/v1/top-ups", PLATFORM,
                               {"owner_id": owner_id, "currency": "USD", "amount_micros": amount_micros}, status=201)
        invoice_id = answer["invoice"]["id"]
        await self.ok("invoicing", "POST", f"/v1/local-provider/invoices/{invoice_id}/payments", PLATFORM, {"scenario": "pay"})

    async def balance_until(self, owner_id: str, token: str, **expected: int) -> dict[str, Any]:
        path = f"/v1/balances/{owner_id}"

        async def check() -> dict[str, Any] | None:
            answer = await self.call("wallet", "GET", path, token)
            found = dict(answer.json()) if answer.status_code == 200 else {}
            return found if all(found.get(k) == v for k, v in expected.items()) else None

        return dict(await until(check, f"balance of {owner_id} {expected}", timeout_s=60))

    # The clock -------------------------------------------------------------------------------------

    async def clock(self) -> dict[str, Any]:
        return await self.ok("identity", "GET", "/v1/sandbox/clock", PLATFORM)

    async def now(self) -> datetime:
        return datetime.fromisoformat((await self.clock())["now"])

    async def advance(self, by: timedelta | None = None, *, to: datetime | None = None) -> httpx.Response:
        body = {"to": to.isoformat()} if to is not None else {"by_seconds": int(by.total_seconds())}  # type: ignore[union-attr]
        return await self.clients["identity"].post(
            "/v1/sandbox/clock/advance", json=body, headers={"Authorization": f"Bearer {PLATFORM}"}, timeout=180,
        )

    async def advanced(self, by: timedelta) -> dict[str, Any]:
        answer = await self.advance(by)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _settings(stack: Stack, world: str, clock_schema: str, topics: dict[str, str], tmp: Path) -> dict[str, dict[str, Any]]:
    common: dict[str, Any] = {
        "profile": "local", "database_url": stack.database_url, "kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
        "clock": "sandbox", "sandbox_clock_schema": clock_schema, "sandbox_clock_poll_interval_ms": 50,
        "outbox_poll_interval_ms": 100, "identity_events_topic": topics["identity.events.v1"],
        "secrets_dir": str(tmp / "secrets"),
    }
    ledger = f"{world}_ledger"
    return {
        "identity": {**common, "wallet_events_topic": topics["wallet.events.v1"], "signing_keys_dir": str(tmp / "identity")},
        "wallet": {
            **common, "ledger_schema": ledger, "events_topic": topics["wallet.events.v1"],
            "commands_topic": topics["wallet.commands.v1"], "invoicing_events_topic": topics["invoicing.events.v1"],
            "campaign_events_topic": topics["campaign.events.v1"], "balances_topic": topics["balances.v1"],
        },
        "invoicing": {
            **common, "ledger_schema": ledger, "wallet_events_topic": topics["wallet.events.v1"],
            "balances_topic": topics["balances.v1"], "commands_topic": topics["invoicing.commands.v1"],
            "spend_posted_topic": topics["spend.posted.v1"], "events_topic": topics["invoicing.events.v1"],
            "orders_events_topic": topics["orders.events.v1"],
        },
        "order_escrow": {
            **common, "wallet_events_topic": topics["wallet.events.v1"], "wallet_commands_topic": topics["wallet.commands.v1"],
            "orders_events_topic": topics["orders.events.v1"],
        },
        "campaign": {
            **common, "events_topic": topics["campaign.events.v1"], "wallet_events_topic": topics["wallet.events.v1"],
            "wallet_commands_topic": topics["wallet.commands.v1"], "invoicing_commands_topic": topics["invoicing.commands.v1"],
            "spend_posted_topic": topics["spend.posted.v1"], "delivery_control_topic": topics["delivery.control.v1"],
        },
    }


def _builder(name: str, settings: dict[str, Any]) -> Callable[[], ServiceRuntime]:
    def build() -> ServiceRuntime:
        if name == "identity":
            from adledger_identity.config import Settings as IdentitySettings
            from adledger_identity.inject import build as build_identity

            return build_identity(IdentitySettings(**settings))
        if name == "wallet":
            from adledger_wallet.config import Settings as WalletSettings
            from adledger_wallet.inject import build as build_wallet

            return build_wallet(WalletSettings(**settings))
        if name == "invoicing":
            from adledger_invoicing.config import Settings as InvoicingSettings
            from adledger_invoicing.inject import build as build_invoicing

            return build_invoicing(InvoicingSettings(**settings))
        if name == "order_escrow":
            from adledger_order_escrow.config import Settings as EscrowSettings
            from adledger_order_escrow.inject import build as build_escrow

            return build_escrow(EscrowSettings(**settings))
        from adledger_campaign.config import Settings as CampaignSettings
        from adledger_campaign.inject import build as build_campaign

        return build_campaign(CampaignSettings(**settings))

    return build


@asynccontextmanager
async def sandbox_world(
    stack: Stack, new_topic: TopicFactory, tmp: Path, *, services: tuple[str, ...], anchor: datetime,
) -> AsyncIterator[SandboxWorld]:
    """The services named, started in order, on a sandbox time anchored at `anchor`."""
    world = unique("sbx")
    clock_schema = f"{world}_clock"
    topics = {name: await new_topic.create(f"{name}.{world}") for name in TOPICS}
    for name in topics.values():
        await new_topic.create(f"{name}.dlq")
    conn = await asyncpg.connect(stack.database_url)
    try:
        await sandbox_clock.ensure_schema(conn, clock_schema)
        await sandbox_clock.read_time(conn, clock_schema, anchor=anchor)
    finally:
        await conn.close()
    settings = _settings(stack, world, clock_schema, topics, tmp)
    ports: dict[str, int] = {}
    builders: dict[str, Callable[[], ServiceRuntime]] = {}
    for name in services:
        ports[name] = free_port()
        settings[name].update(database_schema=f"{world}_{name}", http_port=ports[name], kafka_consumer_group=f"{world}_{name}")
        builders[name] = _builder(name, settings[name])
    sandbox = SandboxWorld(stack, clock_schema, topics, builders, ports)
    sandbox.clients = {name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30.0) for name, port in ports.items()}
    previous = {k: os.environ.get(k) for k in ("ADLEDGER_EMAIL_SINK_DIR",)}
    os.environ["ADLEDGER_EMAIL_SINK_DIR"] = str(tmp / "emails")
    try:
        for name in services:
            await sandbox.start(name)
        yield sandbox
    finally:
        for name in list(sandbox.running):
            await sandbox.stop(name)
        for client in sandbox.clients.values():
            await client.aclose()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        conn = await asyncpg.connect(stack.database_url)
        try:
            for schema in [clock_schema, f"{world}_ledger", *(f"{world}_{name}" for name in services)]:
                await conn.execute(f"drop schema if exists {schema} cascade")
        finally:
            await conn.close()


def anchor_at(hour: int, *, days_ahead: int = 1) -> datetime:
    """A sandbox start: `days_ahead` UTC days after today's, at `hour`:00 UTC."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days_ahead, hours=hour)
