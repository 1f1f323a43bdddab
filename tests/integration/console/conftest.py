"""The console's world: the whole platform in-process (tests/integration/platform.py: wallet, spend
consumer, invoicing with its local provider, campaign) plus the real identity service and the
console itself, on the real Kafka and PostgreSQL, driven by a real headless Chromium.

The identity service publishes on the world's identity topic (the one the world's `TestIdentity`
uses) and reads the world's wallet events, so people created through it sign in for real and are
known to every service; the Business Centers' first Admins come from the wallet's
`BusinessCenterOpened`, as in production. The console reads the world's `delivery.state.v1`.

One world serves the module's journeys (a world takes seconds to start; the suite must stay short);
each journey uses Business Centers and people of its own."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
import uvicorn

from adledger_console.app import create_app
from adledger_console.config import Settings as ConsoleSettings
from adledger_console.delivery import DeliveryStates
from adledger_ledger.postgres import PostgresLedger
from adledger_wallet.adapters.postgres import PostgresWalletStore
from adledger_wallet.day_closes import DayCloses
from adledger_identity.config import Settings as IdentitySettings
from adledger_order_escrow.config import Settings as EscrowSettings
from adledger_order_escrow.inject import wire as wire_escrow
from adledger_identity.inject import wire as wire_identity
from adledger_sends.config import Settings as SendsSettings
from adledger_sends.inject import wire as wire_sends

from ..conftest import Stack, unique
from ..identity_world import PLATFORM, _replicated
from ..kafka_io import delete_consumer_groups, take_world_tags
from ..running import running
from ..platform import USD, Platform, platform_world
from ..waits import free_port, until
from .browser import Browser, start_chrome

PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[3]


@dataclass
class ConsoleWorld:
    platform: Platform
    identity: httpx.AsyncClient
    console_url: str
    states: DeliveryStates
    browser: Browser
    escrow: httpx.AsyncClient
    escrow_pool: Any
    sends: httpx.AsyncClient
    sends_pool: Any

    @property
    def replicas(self) -> list[Any]:
        billing = self.platform.billing
        assert billing.wallet_runtime is not None
        return [
            billing.wallet_runtime.pool,
            billing.service.runtime.pool,
            self.platform.campaigns.instance.service.runtime.pool,
            self.escrow_pool,
            self.sends_pool,
        ]

    async def person(self, name: str) -> str:
        """A person of the identity service with a password, known to every service."""
        user_id = unique(name.split()[0].lower())
        answer = await self.identity.post(
            "/v1/users",
            json={"id": user_id, "name": name, "password": PASSWORD},
            headers={"Authorization": f"Bearer {PLATFORM}", "Idempotency-Key": unique("k")},
        )
        assert answer.status_code == 201, answer.text
        for pool in self.replicas:
            await _replicated(pool, "select true from identity_users where user_id = $1", user_id)
        return user_id

    async def sign_in(self, user_id: str) -> str:
        answer = await self.identity.post("/v1/sessions", json={"user_id": user_id, "password": PASSWORD})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])

    async def business_center(self, admin_user_id: str, name: str = "Acme Media") -> str:
        """Opened by the platform operator; the identity service makes `admin_user_id` its first Admin."""
        business_center_id = unique("bc")
        await self.platform.billing.wallet_command(
            "POST",
            "/v1/business-centers",
            PLATFORM,
            {"id": business_center_id, "name": name, "currency": "USD", "admin_user_id": admin_user_id},
        )
        await self._member(business_center_id, admin_user_id, "admin")
        await self.platform.billing.subscribe(business_center_id)
        return business_center_id

    async def grant(self, business_center_id: str, user_id: str, role: str) -> None:
        answer = await self.identity.put(
            f"/v1/business-centers/{quote(business_center_id)}/members/{quote(user_id)}",
            json={"role": role},
            headers={"Authorization": f"Bearer {PLATFORM}", "Idempotency-Key": unique("k")},
        )
        assert answer.status_code == 200, answer.text
        await self._member(business_center_id, user_id, role)

    async def _member(self, business_center_id: str, user_id: str, role: str) -> None:
        for pool in self.replicas:
            await _replicated(
                pool,
                "select true from identity_memberships"
                " where business_center_id = $1 and user_id = $2 and $3 = any(roles)",
                business_center_id,
                user_id,
                role,
            )

    async def ad_account(
        self, business_center_id: str, admin_token: str, *, billing_option: str = "monthly_invoicing"
    ) -> str:
        account_id = unique("acc")
        await self.platform.billing.wallet_command(
            "POST",
            f"/v1/business-centers/{business_center_id}/ad-accounts",
            admin_token,
            {"id": account_id, "name": "Winter", "type": "auction", "billing_option": billing_option},
        )
        await self.platform.billing.owner_business_center(account_id)
        return account_id

    async def paid_top_up(self, token: str, owner_id: str, amount_micros: int) -> None:
        answer = await self.platform.billing.top_up(token, owner_id, amount_micros=amount_micros)
        assert answer.status_code == 201, answer.text
        assert await self.platform.pay(answer.json()["invoice"]["id"]) == ["paid"]

    async def close_days(self) -> list[str]:
        """The wallet's day-close job (W13), run as its periodic job would after the clock moved (T1)."""
        billing = self.platform.billing
        assert billing.wallet_runtime is not None
        runtime = billing.wallet_runtime
        closes = DayCloses(
            lambda: runtime.pool,
            PostgresLedger(runtime.settings.ledger_schema),  # type: ignore[attr-defined]
            PostgresWalletStore.of,
            billing.clock,
        )
        return [day.isoformat() for day in await closes.run_due_closes()]

    async def escrow_call(self, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if method != "GET":
            headers["Idempotency-Key"] = unique("k")
        return await self.escrow.request(method, path, json=body, headers=headers)

    async def sends_call(self, method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        if method != "GET":
            headers["Idempotency-Key"] = unique("k")
        answer = await self.sends.request(method, path, json=body, headers=headers)
        assert answer.status_code < 300, answer.text
        return dict(answer.json())

    async def funding_source(self, business_center_id: str) -> str:
        """A prepaid funding source registered with invoicing (I6) and attached to the account for its sends."""
        source = unique("fs")[:40]
        billing = self.platform.billing
        answer = await billing.call(
            billing.invoicing,
            "POST",
            "/v1/funding-sources",
            PLATFORM,
            {"id": source, "name": "Team budget", "kind": "prepaid_invoice", "currency": "USD",
             "low_balance_contacts": ["ops@acme.example"], "accounts_payable_contact": "ap@acme.example"},
        )
        assert answer.status_code == 201, answer.text
        await self.sends_call(
            "POST",
            "/v1/funding-sources",
            PLATFORM,
            {"id": source, "business_center_id": business_center_id, "kind": "prepaid_invoice", "currency": "USD"},
        )
        return source

    async def source_balance_until(self, source: str, expected: int) -> None:
        billing = self.platform.billing

        async def check() -> bool:
            answer = await billing.call(billing.invoicing, "GET", f"/v1/funding-sources/{source}", PLATFORM)
            assert answer.status_code == 200, answer.text
            return int(answer.json()["balance_micros"]) == expected

        await until(check, f"funding source {source} at {expected}")

    async def order_until(self, order_id: str, token: str, status: str) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            answer = await self.escrow_call("GET", f"/v1/orders/{order_id}", token)
            assert answer.status_code == 200, answer.text
            return dict(answer.json()) if answer.json()["status"] == status else None

        return dict(await until(check, f"order {order_id} {status}", timeout_s=60))

    async def until_balance(self, owner_id: str, real_micros: int) -> dict[str, Any]:
        """The wallet's balance of the owner (read as the platform operator) once its real balance is `real_micros`."""
        last: dict[str, Any] = {}

        async def check() -> dict[str, Any] | None:
            nonlocal last
            answer = await self.platform.billing.call(
                self.platform.billing.wallet, "GET", f"/v1/balances/{owner_id}", PLATFORM
            )
            assert answer.status_code == 200, answer.text
            last = dict(answer.json())
            return last if last["real_micros"] == real_micros else None

        try:
            return dict(await until(check, f"the real balance of {owner_id} at {real_micros}"))
        except AssertionError as error:
            raise AssertionError(f"{error}: {last}") from None


@asynccontextmanager
async def _serve_console(settings: ConsoleSettings, platform: Platform) -> AsyncIterator[tuple[str, DeliveryStates]]:
    states = DeliveryStates(settings.kafka_bootstrap_servers, settings.delivery_state_topic)
    app = create_app(settings, clock=platform.clock, states=states)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.http_port, log_config=None, access_log=False, lifespan="on")
    )
    serving = asyncio.ensure_future(server.serve())
    url = f"http://127.0.0.1:{settings.http_port}"
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:

        async def healthy() -> bool:
            if serving.done():
                serving.result()
            try:
                return (await client.get("/health")).json()["checks"]["delivery_states"] == "ok"
            except httpx.TransportError:
                return False

        await until(healthy, "the console healthy and caught up with delivery.state", timeout_s=30)
    try:
        yield url, states
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)


@pytest_asyncio.fixture(scope="module")
async def console(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ConsoleWorld]:
    mine: set[str] = set()
    take_world_tags()  # the world's consumer groups are this fixture's to delete, not the first test's
    async with platform_world(stack, own_commands_topic=True) as platform:
        billing = platform.billing
        assert billing.identity is not None
        identity_settings = IdentitySettings(
            profile="local",
            database_url=stack.database_url,
            kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
            database_schema=unique("t_identity"),
            http_port=free_port(),
            platform_token=PLATFORM,
            kafka_consumer_group=unique("identity"),
            identity_events_topic=billing.identity.topic,
            wallet_events_topic=billing.wallet_events_topic,
            signing_keys_dir=str(tmp_path_factory.mktemp("identity-keys")),
            outbox_poll_interval_ms=100,
            session_ttl_s=400 * 24 * 3600,  # journeys move the clock by days
        )
        escrow_settings = EscrowSettings(
            profile="local",
            database_url=stack.database_url,
            kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
            database_schema=unique("t_escrow"),
            http_port=free_port(),
            identity_events_topic=billing.identity.topic,
            wallet_events_topic=billing.wallet_events_topic,
            wallet_commands_topic=billing.wallet_commands_topic,
            kafka_consumer_group=unique("escrow-group"),
            outbox_poll_interval_ms=100,
            deadline_poll_interval_ms=3_600_000,
        )
        escrow_runtime = wire_escrow(escrow_settings, platform.clock).runtime
        sends_settings = SendsSettings(
            profile="local",
            database_url=stack.database_url,
            kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
            database_schema=unique("t_sends"),
            ledger_schema=billing.ledger_schema,
            http_port=free_port(),
            identity_events_topic=billing.identity.topic,
            kafka_consumer_group=unique("sends-group"),
            invoicing_commands_topic=billing.invoicing_commands_topic,
            outbox_poll_interval_ms=100,
            schedule_poll_interval_ms=3_600_000,
        )
        sends_runtime = wire_sends(sends_settings, platform.clock).runtime
        async with (
            running(wire_identity(identity_settings, platform.clock).runtime, stack) as identity,
            running(escrow_runtime, stack) as escrow,
            running(sends_runtime, stack) as sends,
        ):
            world_pools = [
                escrow_runtime.pool,
                sends_runtime.pool,
                billing.wallet_runtime.pool,
                billing.service.runtime.pool,  # type: ignore[union-attr]
                platform.campaigns.instance.service.runtime.pool,
            ]
            for pool in world_pools:  # the identity service's signing key, beside the TestIdentity's
                await _replicated(pool, "select count(*) >= 2 from identity_signing_keys where not retired")
            console_settings = ConsoleSettings(
                profile="local",
                kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
                http_port=free_port(),
                identity_url=str(identity.base_url),
                wallet_url=str(billing.wallet.base_url),
                campaign_url=str(platform.campaigns.client.base_url),
                invoicing_url=str(billing.invoicing.base_url),
                escrow_url=str(escrow.base_url),
                sends_url=str(sends.base_url),
                delivery_state_topic=billing.state_topic,
                local_provider_token=PLATFORM,
                live_refresh_ms=500,
            )
            async with _serve_console(console_settings, platform) as (url, states):
                driver = await asyncio.to_thread(start_chrome)
                try:
                    screenshots = Path(tempfile.mkdtemp(prefix="console-screens-"))
                    browser = Browser(driver, url, screenshots)
                    mine = take_world_tags()
                    yield ConsoleWorld(
                        platform, identity, url, states, browser, escrow, escrow_runtime.pool, sends, sends_runtime.pool
                    )
                finally:
                    await asyncio.to_thread(driver.quit)
    try:
        delete_consumer_groups(stack.kafka_bootstrap_servers, mine, timeout_s=10.0)
    except Exception as error:  # noqa: BLE001 - clean-up never fails the journeys
        print(f"warning: the console world's consumer groups were not deleted: {error!r}")


@pytest.fixture
def browser(console: ConsoleWorld, tmp_path: Path) -> Browser:
    """The world's browser, signed out, saving this test's screenshots under its own output dir."""
    console.browser.screenshots = tmp_path / "screenshots"
    return console.browser


def overview_screenshot_target() -> Path | None:
    """`make screenshot` asks for the overview's screenshot in docs/ too."""
    wanted = os.environ.get("ADLEDGER_CONSOLE_SCREENSHOT")
    return Path(wanted) if wanted else None


__all__ = ["USD", "ConsoleWorld", "PASSWORD", "ROOT", "overview_screenshot_target"]
