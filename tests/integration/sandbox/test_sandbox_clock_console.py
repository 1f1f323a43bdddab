"""The finance console in a sandbox (issue 18 with issue 17): its "today" (spend per day, runway,
campaign end dates) is the sandbox's day, read from the wallet's public /health, and follows an
advance; the console is driven over HTTP like a browser (sign-in form, CSRF, cookie)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from adledger_console.apis import Apis
from adledger_console.app import create_app
from adledger_console.config import Settings as ConsoleSettings
from adledger_console.delivery import DeliveryStates
from adledger_console.today import ConsoleTime
from adledger_libs.clock import ManualClock

from ..conftest import Stack, TopicFactory
from ..waits import until
from .world import SandboxWorld, anchor_at, sandbox_world

pytestmark = pytest.mark.integration
#: Far from the wall clock's day, so a console on the wall clock cannot pass.
WALL = datetime(2020, 1, 1, 12, tzinfo=UTC)


@pytest_asyncio.fixture
async def world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> AsyncIterator[SandboxWorld]:
    async with sandbox_world(stack, new_topic, tmp_path, services=("identity", "wallet", "invoicing", "campaign"),
                             anchor=anchor_at(6, days_ahead=3)) as sandbox:
        yield sandbox


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


async def test_t1_the_consoles_today_is_the_sandbox_day_and_follows_an_advance(world: SandboxWorld) -> None:
    urls = {name: str(client.base_url) for name, client in world.clients.items()}
    settings = ConsoleSettings(
        profile="local", clock="sandbox", identity_url=urls["identity"], wallet_url=urls["wallet"],
        campaign_url=urls["campaign"], invoicing_url=urls["invoicing"],
    )
    # The time source alone: the sandbox's now, not the (injected, far away) clock's; off the sandbox, the clock's.
    apis = Apis({"wallet": urls["wallet"]}, 5.0)
    try:
        sandbox_now = await world.now()
        assert await ConsoleTime(ManualClock(WALL), apis, sandbox=True).now() == sandbox_now
        assert await ConsoleTime(ManualClock(WALL), apis, sandbox=False).now() == WALL
    finally:
        await apis.close()

    admin, _ = await world.person("fiona")
    business_center = await world.business_center(admin)
    app = create_app(settings, clock=ManualClock(WALL), states=DeliveryStates("127.0.0.1:1", "unused"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as browser:
        page = (await browser.get("/sign-in")).text
        password = hashlib.sha256(admin.encode()).hexdigest()
        signed = await browser.post("/sign-in", content=f"csrf={_csrf(page)}&user_id={admin}&password={password}",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert signed.status_code == 303, signed.text

        async def overview() -> str | None:
            answer = await browser.get(f"/bc/{business_center}")
            return answer.text if answer.status_code == 200 else None

        def today(page: str) -> str:
            found = re.search(r'data-figure="today">([0-9-]+)<', page)
            assert found, page[:2000]
            return found.group(1)

        first = await until(overview, "the overview", timeout_s=60)
        assert "Sandbox day" in first and today(first) == sandbox_now.date().isoformat()
        assert sandbox_now.date() != datetime.now(UTC).date()

        await world.advanced(timedelta(days=2))
        moved = await world.now()
        assert moved.date() == sandbox_now.date() + timedelta(days=2)
        # The session lasts an hour of sandbox time: sign in again after the advance.
        browser.cookies.clear()
        page = (await browser.get("/sign-in")).text
        await browser.post("/sign-in", content=f"csrf={_csrf(page)}&user_id={admin}&password={password}",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        second = await until(overview, "the overview after the advance", timeout_s=60)
        assert today(second) == moved.date().isoformat()
