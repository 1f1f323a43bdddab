"""Escrowed orders on the real stack (rules O1-O6, W14, M4, W9, T1): the wallet and order_escrow run
in-process on real Kafka and PostgreSQL, share one ManualClock, and talk only through the wallet
world's own commands and events topics (`wallet.commands.v1` and `wallet.events.v1` in production).
Deadlines are acted on by calling the service's deadline job after moving the clock; nothing sleeps
for 48 hours.

Callers are the platform's one identity, the wallet world's (tests/integration/identity_world.py):
the buyer is a person with a session token and the Admin role in the buyer's Business Center (W9),
the seller an integration whose API key has the `orders` scope, and `PLATFORM` the platform
operator's key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from adledger_order_escrow.config import Settings
from adledger_order_escrow.inject import Service, wire

from ..conftest import Stack, unique
from ..identity_world import TestIdentity
from ..kafka_io import read_all
from ..waits import free_port as _free_port
from ..waits import until
from ..wallet.test_wallet_journey import PLATFORM, USD, RunningWallet, wallet  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
H48 = timedelta(hours=48)
#: Sessions outlive the journeys' moves of the clock (several times 48 hours).
SESSION_LIFETIME = timedelta(days=30)


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
class Escrow:
    """The order_escrow service under test, with the parties of one marketplace."""

    stack: Stack
    wallet: RunningWallet
    settings: Settings
    client: httpx.AsyncClient
    instance: Instance
    identity: TestIdentity
    wallet_token: str = ""
    buyer_bc: str = ""
    seller_bc: str = ""
    buyer_token: str = ""
    seller_token: str = ""
    channel_id: str = ""
    extra: list[Instance] = field(default_factory=list)

    async def start_instance(self, *, serve: bool = True) -> Instance:
        # The world's own wallet topics are read from their beginning: nothing of other runs is on them.
        service = wire(self.settings, self.wallet.clock)
        await service.runtime.start()
        stop = asyncio.Event()
        serving = asyncio.ensure_future(service.runtime.serve(stop)) if serve else None
        instance = Instance(service, stop, serving)
        if serve:
            await _until_healthy(self.client)
        return instance

    @property
    def pool(self) -> asyncpg.Pool:
        return self.instance.service.runtime.pool

    async def knows_owner(self, owner_id: str) -> None:
        """Wait until the service learnt the owner from the wallet's events (W9 needs its Business Center)."""

        async def known() -> bool:
            return bool(await self.pool.fetchval("select true from owners where owner_id = $1", owner_id))

        await until(known, f"order_escrow learnt {owner_id} from the wallet's events", timeout_s=90)

    async def serve(self, instance: Instance) -> None:
        instance.serving = asyncio.ensure_future(instance.service.runtime.serve(instance.stop))
        await _until_healthy(self.client)

    async def command(self, path: str, token: str, body: dict[str, Any] | None = None, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key or unique("k")}
        return await self.client.post(path, json=body, headers=headers)

    async def order(self, order_id: str, token: str | None = None) -> dict[str, Any]:
        answer = await self.client.get(f"/v1/orders/{order_id}", headers={"Authorization": f"Bearer {token or self.buyer_token}"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def order_until(self, order_id: str, **expected: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        # Generous: a fresh wallet first reads the shared commands topic's history.
        deadline = loop.time() + 90
        while True:
            found = await self.order(order_id)
            if all(found.get(name) == value if value is not ... else found.get(name) is not None for name, value in expected.items()):
                return found
            assert loop.time() < deadline, f"order {order_id} is {found}, expected {expected}"
            await asyncio.sleep(0.1)

    async def place(self, price_micros: int) -> str:
        answer = await self.command(
            "/v1/orders", self.buyer_token, {"channel_id": self.channel_id, "buyer_owner_id": self.buyer_bc, "price_micros": price_micros, "currency": "USD"}
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "awaiting_funds"
        order_id = str(answer.json()["id"])
        await self.order_until(order_id, status="awaiting_seller")
        return order_id

    async def balance(self, owner_id: str, field_name: str, expected: int) -> dict[str, object]:
        return await self.wallet.balance_until(owner_id, self.wallet_token, field_name, expected)

    async def order_events(self, order_id: str, count: int) -> list[tuple[str, dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            records = await read_all(self.stack.kafka_bootstrap_servers, "orders.events.v1", expect=0, settle_s=0.3)
            # An instance stopped between publishing an outbox row and deleting it publishes the
            # row again when it is back: the same event id, which consumers drop. Count each once.
            distinct = {r.headers["event-id"]: r for r in records if r.key == order_id.encode()}
            mine = [(r.headers["event-type"], json.loads(r.value or b"{}")) for r in distinct.values()]
            if len(mine) >= count:
                return mine
            assert loop.time() < deadline, f"got {mine}"
            await asyncio.sleep(0.2)


async def _until_healthy(client: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert loop.time() < deadline, "order_escrow did not become healthy"
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def escrow(stack: Stack, wallet: RunningWallet) -> AsyncIterator[Escrow]:  # noqa: F811
    """order_escrow in the wallet's world: its identity, its command and event topics, its clock."""
    port = _free_port()
    identity = wallet.identity
    settings = Settings(
        database_url=stack.database_url,
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_escrow"),
        http_port=port,
        identity_events_topic=identity.topic,
        wallet_events_topic=wallet.events_topic,
        wallet_commands_topic=wallet.commands_topic,
        kafka_consumer_group=unique("escrow-group"),
        outbox_poll_interval_ms=100,
        # Tests run the deadline job themselves after moving the ManualClock (T1).
        deadline_poll_interval_ms=3_600_000,
    )
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
    running = Escrow(stack, wallet, settings, client, instance=None, identity=identity)  # type: ignore[arg-type]
    running.instance = await running.start_instance()
    try:
        await identity.replicated(running.pool)
        admin, running.wallet_token = await wallet.user("admin")
        running.buyer_bc, running.seller_bc = unique("bc_buyer"), unique("bc_seller")
        for business_center in (running.buyer_bc, running.seller_bc):
            answer = await wallet.open_business_center(business_center, admin)
            assert answer.status_code == 201, answer.text
        await wallet.pay(unique("inv"), running.buyer_bc, 10 * USD)
        await running.balance(running.buyer_bc, "real_micros", 10 * USD)

        # W9: the buyer may place orders for the buyer's Business Center as its Admin.
        buyer = await identity.user(unique("buyer"), name="Bea Buyer", replicas=[running.pool])
        await identity.grant(running.buyer_bc, buyer, "admin", replicas=[running.pool])
        running.buyer_token = identity.session(buyer, lifetime=SESSION_LIFETIME)
        seller = await identity.integration("seller", scopes=["orders"], replicas=[running.pool])
        running.seller_token = seller.token
        for business_center in (running.buyer_bc, running.seller_bc):
            await running.knows_owner(business_center)
        running.channel_id = unique("channel")
        answer = await running.command(
            "/v1/channels", PLATFORM,
            {"id": running.channel_id, "name": "Gaming Weekly", "seller_user_id": seller.user_id,
             "owner_id": running.seller_bc, "currency": "USD"},
        )
        assert answer.status_code == 201, answer.text
        yield running
    finally:
        for instance in [running.instance, *running.extra]:
            await instance.close()
        await client.aclose()
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.execute(f"drop schema if exists {settings.schema} cascade")
        finally:
            await conn.close()


async def test_o1_o3_o4_o5_accept_ready_complete_then_auto_release_to_the_seller_after_48_hours(escrow: Escrow) -> None:
    order_id = await escrow.place(4 * USD)
    balance = await escrow.balance(escrow.buyer_bc, "virtual_micros", 6 * USD)
    assert balance["real_micros"] == 10 * USD, "O1: the price is held, still the buyer's money"

    seller = escrow.seller_token
    assert (await escrow.command(f"/v1/orders/{order_id}/accept", escrow.buyer_token)).status_code == 403, "only the seller answers"
    assert (await escrow.command(f"/v1/orders/{order_id}/complete", seller)).json()["error"] == "illegal_transition"
    accepted = await escrow.command(f"/v1/orders/{order_id}/accept", seller, key="accept-once")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    repeat = await escrow.command(f"/v1/orders/{order_id}/accept", seller, key="accept-once")
    assert repeat.json() == accepted.json(), "M5: the same key answers the first answer again"
    twice = await escrow.command(f"/v1/orders/{order_id}/accept", seller)
    assert (twice.status_code, twice.json()["error"]) == (409, "illegal_transition")
    assert (await escrow.command(f"/v1/orders/{order_id}/ready", seller)).json()["status"] == "ready"
    completed = await escrow.command(f"/v1/orders/{order_id}/complete", seller)
    assert completed.json()["status"] == "complete"

    events = await escrow.order_events(order_id, 6)
    emails = [payload for kind, payload in events if kind == "EmailRequested"]
    assert len(emails) == 1
    order = await escrow.order(order_id)
    assert (emails[0]["template"], emails[0]["fields"]) == (
        "order_completed", {"user_name": "Bea Buyer", "channel_name": "Gaming Weekly", "order_number": str(order["number"])},
    ), "O4: the buyer is e-mailed with the user name, channel name and order number"

    escrow.wallet.clock.advance(H48 - timedelta(seconds=1))
    assert await escrow.instance.service.deadlines.run() == 0, "not due yet"
    escrow.wallet.clock.advance(timedelta(seconds=1))
    assert await escrow.instance.service.deadlines.run() == 1
    assert await escrow.instance.service.deadlines.run() == 0, "O6: acts once"
    late = await escrow.command(f"/v1/orders/{order_id}/dispute", escrow.buyer_token, {"reason": "too late"})
    assert (late.status_code, late.json()["error"]) == (409, "illegal_transition")

    settled = await escrow.order_until(order_id, status="released", settled_posted_micros=4 * USD)
    assert (settled["seller_micros"], settled["buyer_micros"]) == (4 * USD, 0)
    await escrow.balance(escrow.seller_bc, "real_micros", 4 * USD)
    balance = await escrow.balance(escrow.buyer_bc, "real_micros", 6 * USD)
    assert balance["virtual_micros"] == 6 * USD, "W14: the held price covered the release, nothing outstanding"


async def test_o2_no_answer_in_48_hours_returns_the_hold_to_the_buyer_at_once(escrow: Escrow) -> None:
    order_id = await escrow.place(3 * USD)
    await escrow.balance(escrow.buyer_bc, "virtual_micros", 7 * USD)
    escrow.wallet.clock.advance(H48)
    late = await escrow.command(f"/v1/orders/{order_id}/accept", escrow.seller_token)
    assert (late.status_code, late.json()["error"]) == (409, "answer_window_closed"), "nothing changes after the window"
    assert await escrow.instance.service.deadlines.run() == 1
    await escrow.order_until(order_id, status="expired", settled_posted_micros=0)
    await escrow.balance(escrow.buyer_bc, "virtual_micros", 10 * USD)
    assert (await escrow.command(f"/v1/orders/{order_id}/accept", escrow.seller_token)).json()["error"] == "illegal_transition"


async def test_o2_a_decline_needs_a_reason_and_refunds_and_a_declined_order_cannot_complete(escrow: Escrow) -> None:
    order_id = await escrow.place(2 * USD)
    empty = await escrow.command(f"/v1/orders/{order_id}/decline", escrow.seller_token, {"reason": ""})
    assert empty.status_code == 422
    declined = await escrow.command(f"/v1/orders/{order_id}/decline", escrow.seller_token, {"reason": "fully booked in December"})
    assert declined.json()["status"] == "declined"
    completed = await escrow.command(f"/v1/orders/{order_id}/complete", escrow.seller_token)
    assert (completed.status_code, completed.json()["error"]) == (409, "illegal_transition")
    await escrow.order_until(order_id, status="declined", settled_posted_micros=0)
    await escrow.balance(escrow.buyer_bc, "virtual_micros", 10 * USD)


async def test_o1_an_order_the_buyer_cannot_cover_is_rejected_and_a_reorder_copies_a_past_order(escrow: Escrow) -> None:
    answer = await escrow.command(
        "/v1/orders", escrow.buyer_token, {"channel_id": escrow.channel_id, "buyer_owner_id": escrow.buyer_bc, "price_micros": 11 * USD, "currency": "USD"}
    )
    too_much = str(answer.json()["id"])
    await escrow.order_until(too_much, status="rejected_insufficient_funds")
    first = await escrow.place(USD)
    again = await escrow.command(f"/v1/orders/{first}/reorder", escrow.buyer_token)
    assert again.status_code == 201, again.text
    copy = again.json()
    assert (copy["reordered_from_order_id"], copy["price_micros"], copy["seller_owner_id"]) == (first, USD, escrow.seller_bc)
    await escrow.order_until(copy["id"], status="awaiting_seller")
    await escrow.balance(escrow.buyer_bc, "virtual_micros", 8 * USD)


async def test_o5_complete_then_dispute_then_an_admin_split_that_adds_up(escrow: Escrow) -> None:
    order_id = await escrow.place(10 * USD)
    await escrow.command(f"/v1/orders/{order_id}/accept", escrow.seller_token)
    await escrow.command(f"/v1/orders/{order_id}/complete", escrow.seller_token)
    escrow.wallet.clock.advance(H48 - timedelta(minutes=1))
    disputed = await escrow.command(f"/v1/orders/{order_id}/dispute", escrow.buyer_token, {"reason": "half the posts never ran"})
    assert disputed.json()["status"] == "disputed"
    escrow.wallet.clock.advance(timedelta(hours=1))
    assert await escrow.instance.service.deadlines.run() == 0, "the release deadline is only marked done"
    assert (await escrow.order(order_id))["status"] == "disputed", "O5: a dispute freezes the funds"
    await escrow.balance(escrow.buyer_bc, "virtual_micros", 0)

    assert (await escrow.command(f"/v1/orders/{order_id}/resolution", escrow.buyer_token, {"outcome": "refund"})).status_code == 403
    wrong = await escrow.command(f"/v1/orders/{order_id}/resolution", PLATFORM, {"outcome": "split", "seller_micros": 6 * USD, "buyer_micros": 3 * USD})
    assert (wrong.status_code, wrong.json()["error"]) == (422, "invalid_split")
    split = await escrow.command(f"/v1/orders/{order_id}/resolution", PLATFORM, {"outcome": "split", "seller_micros": 6 * USD, "buyer_micros": 4 * USD})
    assert split.json()["status"] == "split"
    await escrow.order_until(order_id, settled_posted_micros=6 * USD)
    await escrow.balance(escrow.seller_bc, "real_micros", 6 * USD)
    balance = await escrow.balance(escrow.buyer_bc, "real_micros", 4 * USD)
    assert balance["virtual_micros"] == 4 * USD


async def test_o6_a_service_down_across_a_deadline_acts_on_it_once_when_it_is_back(escrow: Escrow) -> None:
    order_id = await escrow.place(5 * USD)
    await escrow.instance.close()
    escrow.wallet.clock.advance(H48 + timedelta(hours=3))
    # The new instance's job runs before it serves (a serving instance runs it at once by itself).
    escrow.instance = await escrow.start_instance(serve=False)
    assert await escrow.instance.service.deadlines.run() == 1
    assert await escrow.instance.service.deadlines.run() == 0
    await escrow.serve(escrow.instance)
    assert await escrow.instance.service.deadlines.run() == 0, "acted once"
    await escrow.order_until(order_id, status="expired", settled_posted_micros=0)
    await escrow.balance(escrow.buyer_bc, "virtual_micros", 10 * USD)
    events = await escrow.order_events(order_id, 3)
    assert [payload["status"] for kind, payload in events if kind == "OrderStatusChanged"] == ["awaiting_seller", "expired"]


async def test_o6_two_instances_running_the_deadline_job_together_act_once(escrow: Escrow) -> None:
    orders = [await escrow.place(USD) for _ in range(4)]
    second = await escrow.start_instance(serve=False)
    escrow.extra.append(second)
    escrow.wallet.clock.advance(H48)
    first_count, second_count = await asyncio.gather(escrow.instance.service.deadlines.run(), second.service.deadlines.run())
    assert first_count + second_count == 4
    for order_id in orders:
        await escrow.order_until(order_id, status="expired", settled_posted_micros=0)
    await escrow.balance(escrow.buyer_bc, "virtual_micros", 10 * USD)
    for order_id in orders:
        events = await escrow.order_events(order_id, 3)
        assert [payload["status"] for kind, payload in events if kind == "OrderStatusChanged"] == ["awaiting_seller", "expired"]
