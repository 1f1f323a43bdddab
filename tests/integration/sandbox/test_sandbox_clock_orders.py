"""The sandbox test clock (issue 17, T1) moving a real platform through HTTP only: an order refunded after
48 hours with no answer (O2) and one released 48 hours after Complete (O5), each exactly once, at its own
time (the event carries the time it was due), and still once when a service restarts in the middle of an
advance. Moving backwards is refused; the sandbox clock is refused in production."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ..conftest import Stack, TopicFactory, unique
from ..cli_process import adledger
from ..kafka_io import read_all
from ..waits import until
from .world import PLATFORM, USD, SandboxWorld, anchor_at, sandbox_world

pytestmark = pytest.mark.integration
H48 = timedelta(hours=48)


@dataclass
class Market:
    world: SandboxWorld
    buyer: str
    buyer_token: str
    buyer_bc: str
    seller_bc: str
    seller_token: str
    channel_id: str

    async def buyer_session(self) -> str:
        """A session lasts an hour of sandbox time: after an advance the buyer signs in again."""
        self.buyer_token = await self.world.sign_in(self.buyer)
        return self.buyer_token

    async def place(self, price_micros: int) -> str:
        answer = await self.world.ok("order_escrow", "POST", "/v1/orders", self.buyer_token, {
            "channel_id": self.channel_id, "buyer_owner_id": self.buyer_bc, "price_micros": price_micros, "currency": "USD",
        }, status=201)
        order_id = str(answer["id"])
        await self.order_until(order_id, "awaiting_seller")
        return order_id

    async def seller(self, order_id: str, action: str) -> dict[str, Any]:
        return await self.world.ok("order_escrow", "POST", f"/v1/orders/{order_id}/{action}", self.seller_token)

    async def order_until(self, order_id: str, status: str) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            answer = await self.world.call("order_escrow", "GET", f"/v1/orders/{order_id}", PLATFORM)
            found = dict(answer.json())
            return found if found.get("status") == status else None

        return dict(await until(check, f"order {order_id} {status}", timeout_s=60))

    async def status_events(self, order_id: str, expect: int) -> list[dict[str, Any]]:
        """The order's OrderStatusChanged events, each once (a re-published outbox row has the same event id)."""
        records = await read_all(self.world.stack.kafka_bootstrap_servers, self.world.topics["orders.events.v1"],
                                 expect=expect, settle_s=1.0)
        distinct = {r.headers["event-id"]: r for r in records if r.key == order_id.encode()}
        return [json.loads(r.value or b"{}") for r in distinct.values() if r.headers.get("event-type") == "OrderStatusChanged"]


@pytest_asyncio.fixture
async def market(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> AsyncIterator[Market]:
    async with sandbox_world(
        stack, new_topic, tmp_path, services=("identity", "wallet", "invoicing", "order_escrow"), anchor=anchor_at(6),
    ) as world:
        buyer, buyer_token = await world.person("bea")
        buyer_bc = await world.business_center(buyer)
        sally, _ = await world.person("sally")
        seller_bc = await world.business_center(sally)
        seller, seller_token = await world.person("seller", kind="integration")
        await world.top_up(buyer_bc, 10 * USD)
        await world.balance_until(buyer_bc, PLATFORM, real_micros=10 * USD)
        channel_id = unique("channel")
        await world.ok("order_escrow", "POST", "/v1/channels", PLATFORM, {
            "id": channel_id, "name": "Gaming Weekly", "seller_user_id": seller, "owner_id": seller_bc, "currency": "USD",
        }, status=201, retry_404=True)
        yield Market(world, buyer, buyer_token, buyer_bc, seller_bc, seller_token, channel_id)


def _at(payload: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(payload["changed_at"])


async def test_o2_t1_sandbox_no_answer_in_48_hours_refunds_the_buyer_once_at_the_deadline(market: Market) -> None:
    world = market.world
    placed_at = await world.now()
    order_id = await market.place(3 * USD)
    await world.balance_until(market.buyer_bc, PLATFORM, virtual_micros=7 * USD)

    almost = await world.advanced(H48 - timedelta(seconds=1))
    assert datetime.fromisoformat(almost["now"]) == placed_at + H48 - timedelta(seconds=1)
    assert all(service["caught_up"] for service in almost["services"]), almost
    assert {s["service"] for s in almost["services"]} == {"identity", "wallet", "invoicing", "order_escrow"}
    assert almost["hops"] >= 3, "two UTC midnights on the way, then the target"
    await market.order_until(order_id, "awaiting_seller")

    moved = await world.advanced(timedelta(hours=5))
    assert datetime.fromisoformat(moved["now"]) == placed_at + H48 + timedelta(hours=5) - timedelta(seconds=1)
    await market.order_until(order_id, "expired")
    await world.balance_until(market.buyer_bc, PLATFORM, virtual_micros=10 * USD, real_micros=10 * USD)
    events = await market.status_events(order_id, 2)
    expired = [event for event in events if event["status"] == "expired"]
    assert len(expired) == 1, events
    assert _at(expired[0]) == placed_at + H48, "the deadline fired at its own time, not at the end of the advance"
    late = await world.call("order_escrow", "POST", f"/v1/orders/{order_id}/accept", market.seller_token)
    assert late.status_code == 409, late.text

    # Backwards is refused, with a typed answer; the time is unchanged.
    before = await world.now()
    backwards = await world.advance(to=before - timedelta(hours=1))
    assert backwards.status_code == 409 and backwards.json()["error"] == "clock_backwards", backwards.text
    assert await world.now() == before
    # Only a platform operator moves time.
    buyer_token = await market.buyer_session()
    refused = await world.clients["identity"].post(
        "/v1/sandbox/clock/advance", json={"by_seconds": 60}, headers={"Authorization": f"Bearer {buyer_token}"},
    )
    assert refused.status_code == 403, refused.text
    health = (await world["order_escrow"].get("/health")).json()
    assert health["sandbox_clock"]["reached"] == before.isoformat(), health


async def test_o5_t1_sandbox_release_48_hours_after_complete_once_across_a_restart_mid_advance(market: Market) -> None:
    world = market.world
    order_id = await market.place(4 * USD)
    await market.seller(order_id, "accept")
    await market.seller(order_id, "ready")
    await market.seller(order_id, "complete")
    completed_at = await world.now()

    advancing = asyncio.ensure_future(world.advance(H48 + timedelta(hours=2)))
    # The first hop (the next UTC midnight) is made; then order_escrow stops, so the advance waits for it.
    await until(lambda: _moved_past(world, completed_at), "the first hop of the advance", timeout_s=60)
    await world.stop("order_escrow")
    assert not advancing.done(), "the advance cannot end while a service is behind"
    await world.start("order_escrow")
    answer = await asyncio.wait_for(advancing, 180)
    assert answer.status_code == 200, answer.text
    assert all(service["caught_up"] for service in answer.json()["services"])

    await market.order_until(order_id, "released")
    await world.balance_until(market.seller_bc, PLATFORM, real_micros=4 * USD)
    await world.balance_until(market.buyer_bc, PLATFORM, real_micros=6 * USD, virtual_micros=6 * USD)
    released = [event for event in await market.status_events(order_id, 5) if event["status"] == "released"]
    assert len(released) == 1, released
    assert _at(released[0]) == completed_at + H48


async def test_o2_t1_sandbox_a_restart_across_the_deadline_refunds_once(market: Market) -> None:
    """order_escrow is down while the time passes its deadline (the advance waits for it, bounded)."""
    world = market.world
    placed_at = await world.now()
    order_id = await market.place(2 * USD)
    await world.stop("order_escrow")
    advancing = asyncio.ensure_future(world.advance(H48 + timedelta(hours=1)))
    await until(lambda: _moved_past(world, placed_at), "the first hop", timeout_s=60)
    await world.start("order_escrow")
    answer = await asyncio.wait_for(advancing, 180)
    assert answer.status_code == 200, answer.text
    await market.order_until(order_id, "expired")
    await world.balance_until(market.buyer_bc, PLATFORM, virtual_micros=10 * USD)
    expired = [event for event in await market.status_events(order_id, 2) if event["status"] == "expired"]
    assert len(expired) == 1 and _at(expired[0]) == placed_at + H48, expired


async def _moved_past(world: SandboxWorld, moment: datetime) -> bool:
    return await world.now() > moment


async def test_o2_t1_adledger_clock_advance_48h_refunds_an_unanswered_order(market: Market) -> None:
    """The README's sandbox: `adledger clock advance 48h` with the operator's token, as an operator runs it."""
    world = market.world
    environment = {"ADLEDGER_PROFILE": "local", "ADLEDGER_IDENTITY_URL": f"http://127.0.0.1:{world.ports['identity']}"}
    shown = await adledger("clock", "show", "--json", **environment)
    assert shown.returncode == 0, shown
    placed_at = datetime.fromisoformat(shown.json()["now"])
    order_id = await market.place(USD)

    wrong = await adledger("clock", "advance", "48 hours", **environment)
    assert wrong.returncode == 2 and "not a duration" in wrong.stderr, wrong
    advanced = await adledger("clock", "advance", "48h", "--json", **environment)
    assert advanced.returncode == 0, advanced
    assert datetime.fromisoformat(advanced.json()["now"]) == placed_at + H48
    assert all(service["caught_up"] for service in advanced.json()["services"])
    await market.order_until(order_id, "expired")
    await world.balance_until(market.buyer_bc, PLATFORM, virtual_micros=10 * USD)

    human = await adledger("clock", "show", **environment)
    assert human.returncode == 0 and f"sandbox time {(placed_at + H48).isoformat()[:19]}" in human.stdout, human
    assert "order_escrow" in human.stdout
    backwards = await adledger("clock", "advance", "--to", "2000-01-01T00:00:00", **environment)
    assert backwards.returncode == 3 and "clock_backwards" in backwards.stderr, backwards
    no_token = await adledger("clock", "show", **{**environment, "ADLEDGER_PROFILE": "production"})
    assert no_token.returncode == 3 and "ADLEDGER_PLATFORM_TOKEN" in no_token.stderr, no_token
