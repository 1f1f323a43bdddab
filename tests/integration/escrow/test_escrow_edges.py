"""order_escrow's edges on the real stack (issues 12 and 13): tenants fenced (W9), hostile HTTP
requests answered with a typed 4xx that changes nothing, and poisoned wallet records
dead-lettered with a reason while the stream goes on.

The service runs alone on private topics: the test plays the wallet (it publishes the wallet's
`BusinessCenterOpened`, `AdAccountOpened` and `HoldPlaced` on the service's own wallet-events
topic, and reads the commands the service sends on its own commands topic), and the identity
(tests/integration/identity_world.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from adledger_auth import tokens
from adledger_contracts.wallet import AdAccountOpened, BusinessCenterOpened, HoldPlaced
from adledger_libs.clock import ManualClock
from adledger_libs.events import Message, encode
from adledger_order_escrow.config import Settings
from adledger_order_escrow.inject import Service, wire

from ..conftest import Stack, TopicFactory, unique
from ..identity_world import PLATFORM, TestIdentity
from ..kafka_io import produce, read_all
from ..running import running
from ..waits import free_port, until

pytestmark = pytest.mark.integration
USD = 1_000_000


@dataclass
class Lone:
    """order_escrow on its own topics, with a buyer's and a seller's Business Center and a channel."""

    service: Service
    client: httpx.AsyncClient
    identity: TestIdentity
    clock: ManualClock
    stack: Stack
    wallet_events: str
    wallet_commands: str
    buyer_bc: str = ""
    seller_bc: str = ""
    buyer: str = ""
    buyer_token: str = ""
    seller_token: str = ""
    channel_id: str = ""

    @property
    def pool(self) -> asyncpg.Pool:
        return self.service.runtime.pool

    async def call(
        self, method: str, path: str, token: str | None, body: Any = None, *, key: str | None = "new"
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if method != "GET" and key is not None:
            headers["Idempotency-Key"] = unique("k") if key == "new" else key
        return await self.client.request(method, path, json=body, headers=headers)

    async def as_wallet(self, *messages: Message, key: str) -> None:
        records = []
        for message in messages:
            envelope = encode(message, key=key, trace_id="test-wallet")
            records.append((envelope.key, envelope.value, list(envelope.headers)))
        await produce(self.stack.kafka_bootstrap_servers, self.wallet_events, records)

    async def open_business_center(self, currency: str = "USD") -> str:
        business_center = unique("bc")
        await self.as_wallet(
            BusinessCenterOpened(
                business_center_id=business_center, currency=currency, credit_limit_micros=0, opened_at=self.clock.now()
            ),
            key=business_center,
        )
        await self.knows(business_center)
        return business_center

    async def knows(self, owner_id: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            row = await self.pool.fetchrow("select * from owners where owner_id = $1", owner_id)
            return dict(row) if row is not None else None

        known: dict[str, Any] = await until(found, f"order_escrow learnt {owner_id}", timeout_s=30)
        return known

    async def place(self, token: str, owner_id: str, price_micros: int = USD) -> httpx.Response:
        body = {
            "channel_id": self.channel_id,
            "buyer_owner_id": owner_id,
            "price_micros": price_micros,
            "currency": "USD",
        }
        return await self.call("POST", "/v1/orders", token, body)

    async def counts(self) -> tuple[int, int, int]:
        """Orders, channels and outbox rows published so far (the relay empties the outbox, so the
        idempotency answers stand for what was published)."""
        orders = await self.pool.fetchval("select count(*) from orders")
        channels = await self.pool.fetchval("select count(*) from channels")
        answers = await self.pool.fetchval("select count(*) from idempotent_requests")
        return int(orders), int(channels), int(answers)


@pytest_asyncio.fixture
async def lone(stack: Stack, new_topic: TopicFactory) -> AsyncIterator[Lone]:
    clock = ManualClock(datetime(2026, 12, 3, 9, tzinfo=UTC))
    identity = await TestIdentity.create(stack, new_topic, clock)
    wallet_events, wallet_commands, orders_events = (
        await new_topic("wallet-events"),
        await new_topic("wallet-commands"),
        await new_topic("orders-events"),
    )
    await new_topic.create(wallet_events + ".dlq", partitions=1)
    settings = Settings(
        database_url=stack.database_url,
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_schema=unique("t_escrow_edges"),
        http_port=free_port(),
        identity_events_topic=identity.topic,
        wallet_events_topic=wallet_events,
        wallet_commands_topic=wallet_commands,
        orders_events_topic=orders_events,
        kafka_consumer_group=unique("escrow-edges"),
        outbox_poll_interval_ms=100,
        deadline_poll_interval_ms=3_600_000,
    )
    service = wire(settings, clock)
    async with running(service.runtime, stack) as client:
        world = Lone(service, client, identity, clock, stack, wallet_events, wallet_commands)
        await identity.replicated(world.pool)
        world.buyer_bc, world.seller_bc = await world.open_business_center(), await world.open_business_center()
        world.buyer, world.buyer_token = await identity.person("bea", replicas=[world.pool])
        await identity.grant(world.buyer_bc, world.buyer, "admin", replicas=[world.pool])
        seller, world.seller_token = await identity.person("sam", replicas=[world.pool])
        world.channel_id = unique("channel")
        answer = await world.call(
            "POST",
            "/v1/channels",
            PLATFORM,
            {
                "id": world.channel_id,
                "name": "Gaming Weekly",
                "seller_user_id": seller,
                "owner_id": world.seller_bc,
                "currency": "USD",
            },
        )
        assert answer.status_code == 201, answer.text
        yield world


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    """An error body with one id taken out of its reason, to compare two answers' shapes."""
    return {**body, "reason": body["reason"].replace(name, "<id>")}


async def test_w9_tenants_fenced_a_stranger_is_answered_as_for_an_order_or_owner_that_does_not_exist(
    lone: Lone,
) -> None:
    placed = await lone.place(lone.buyer_token, lone.buyer_bc)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    # A stranger is an Admin of their own Business Center, but of no business of this order.
    stranger, stranger_token = await lone.identity.person("otto", replicas=[lone.pool])
    own_bc = await lone.open_business_center()
    await lone.identity.grant(own_bc, stranger, "admin", replicas=[lone.pool])

    unknown = await lone.call("GET", "/v1/orders/no-such-order", stranger_token)
    hidden = await lone.call("GET", f"/v1/orders/{order_id}", stranger_token)
    assert unknown.status_code == hidden.status_code == 404
    assert _without(hidden.json(), order_id) == _without(unknown.json(), "no-such-order")
    assert hidden.json()["error"] == "not_found"
    for action in ("accept", "complete", "dispute", "reorder", "resolution"):
        body = {"outcome": "refund"} if action == "resolution" else {} if action == "dispute" else None
        refused = await lone.call("POST", f"/v1/orders/{order_id}/{action}", stranger_token, body)
        assert (refused.status_code, refused.json()["error"]) == (404, "not_found"), action
    for token, status in ((lone.buyer_token, 200), (lone.seller_token, 200), (PLATFORM, 200)):
        assert (await lone.call("GET", f"/v1/orders/{order_id}", token)).status_code == status

    # Placing for another tenant's Business Center: told it does not exist, as for an unknown one.
    theirs = await lone.place(stranger_token, lone.buyer_bc)
    nowhere = await lone.place(stranger_token, "bc-nowhere")
    assert theirs.status_code == nowhere.status_code == 404
    assert _without(theirs.json(), lone.buyer_bc) == _without(nowhere.json(), "bc-nowhere")

    # W9 inside the Business Center: an Analyst may not place an order; once a Finance Manager is
    # set up, the Finance Manager may.
    analyst, analyst_token = await lone.identity.person("ana", replicas=[lone.pool])
    await lone.identity.grant(lone.buyer_bc, analyst, "analyst", replicas=[lone.pool])
    denied = await lone.place(analyst_token, lone.buyer_bc)
    assert (denied.status_code, denied.json()["error"]) == (403, "permission_denied")
    finance, finance_token = await lone.identity.person("fiona", replicas=[lone.pool])
    await lone.identity.grant(lone.buyer_bc, finance, "finance_manager", replicas=[lone.pool])
    assert (await lone.place(finance_token, lone.buyer_bc)).status_code == 201

    # The buyer's own ad account: its Business Center's roles decide (W9).
    account = unique("acc")
    await lone.as_wallet(
        AdAccountOpened(
            ad_account_id=account,
            business_center_id=lone.buyer_bc,
            type="auction",
            billing_option="prepaid",
            currency="USD",
            draws_on_business_center=False,
            opened_at=lone.clock.now(),
        ),
        key=account,
    )
    await lone.knows(account)
    assert (await lone.place(lone.buyer_token, account)).status_code == 201
    assert (await lone.place(stranger_token, account)).status_code == 404
    assert await lone.pool.fetchval("select count(*) from orders") == 3


async def test_hostile_requests_get_a_typed_4xx_and_change_nothing(lone: Lone) -> None:
    placed = await lone.place(lone.buyer_token, lone.buyer_bc)
    order_id = placed.json()["id"]
    before = await lone.counts()
    order = {"channel_id": lone.channel_id, "buyer_owner_id": lone.buyer_bc, "price_micros": USD, "currency": "USD"}
    forged_key = tokens.new_signing_key()
    now = lone.clock.now()
    forged = tokens.sign_session(
        forged_key,
        lone.identity.key_id,
        tokens.SessionClaims(
            user_id=lone.buyer, session_id="forged", issued_at=now, expires_at=now + timedelta(hours=1)
        ),
    )
    expired = lone.identity.session(lone.buyer, lifetime=timedelta(seconds=-1))
    cases: list[tuple[str, str, str | None, Any, int, str]] = [
        ("POST", "/v1/orders", lone.buyer_token, {**order, "price_micros": 2**63}, 422, "invalid_request"),
        ("POST", "/v1/orders", lone.buyer_token, {**order, "price_micros": 0}, 422, "invalid_request"),
        ("POST", "/v1/orders", lone.buyer_token, {**order, "price_micros": 1.5}, 422, "invalid_request"),
        ("POST", "/v1/orders", lone.buyer_token, {**order, "channel_id": "gaming\x00"}, 422, "invalid_request"),
        ("POST", "/v1/orders", lone.buyer_token, {**order, "buyer_owner_id": "bc\u0085x"}, 422, "invalid_request"),
        ("POST", "/v1/orders", lone.buyer_token, {**order, "buyer_owner_id": "b" * 129}, 422, "invalid_request"),
        ("POST", "/v1/orders", lone.buyer_token, {**order, "currency": "usd"}, 422, "invalid_request"),
        ("POST", "/v1/orders", lone.buyer_token, {**order, "extra": 1}, 422, "invalid_request"),
        ("POST", "/v1/orders", None, order, 401, "unauthenticated"),
        ("POST", "/v1/orders", forged, order, 401, "unauthenticated"),
        ("POST", "/v1/orders", expired, order, 401, "unauthenticated"),
        ("POST", "/v1/orders", "not-a-token", order, 401, "unauthenticated"),
        ("GET", "/v1/orders/%01bad", lone.buyer_token, None, 422, "invalid_request"),
        ("GET", f"/v1/orders/{'x' * 129}", lone.buyer_token, None, 422, "invalid_request"),
        ("POST", f"/v1/orders/{order_id}/decline", lone.seller_token, {"reason": "no\x00"}, 422, "invalid_request"),
        ("POST", f"/v1/orders/{order_id}/decline", lone.seller_token, {"reason": "x" * 201}, 422, "invalid_request"),
        ("POST", f"/v1/orders/{order_id}/dispute", lone.buyer_token, {"reason": "\x07"}, 422, "invalid_request"),
        (
            "POST",
            f"/v1/orders/{order_id}/resolution",
            PLATFORM,
            {"outcome": "split", "seller_micros": 2**63, "buyer_micros": 1},
            422,
            "invalid_request",
        ),
        ("POST", f"/v1/orders/{order_id}/resolution", PLATFORM, {"outcome": "keep"}, 422, "invalid_request"),
        (
            "POST",
            "/v1/channels",
            PLATFORM,
            {"id": "a/b", "name": "x", "seller_user_id": lone.buyer, "owner_id": lone.seller_bc, "currency": "USD"},
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/channels",
            lone.buyer_token,
            {
                "id": unique("ch"),
                "name": "x",
                "seller_user_id": lone.buyer,
                "owner_id": lone.seller_bc,
                "currency": "USD",
            },
            403,
            "permission_denied",
        ),
        (
            "POST",
            "/v1/channels",
            PLATFORM,
            {
                "id": unique("ch"),
                "name": "x",
                "seller_user_id": lone.buyer,
                "owner_id": lone.seller_bc,
                "currency": "EUR",
            },
            422,
            "invalid_value",
        ),
    ]
    for method, path, token, body, status, error in cases:
        answer = await lone.call(method, path, token, body)
        assert (answer.status_code, answer.json().get("error")) == (status, error), (path, body, answer.text)
        assert answer.json()["reason"], "every refusal says why"
    missing_key = await lone.call("POST", "/v1/orders", lone.buyer_token, order, key=None)
    assert (missing_key.status_code, missing_key.json()["error"]) == (400, "idempotency_key_required")
    huge = await lone.client.post(
        "/v1/orders",
        content=json.dumps({**order, "padding": "x" * 100_000}),
        headers={
            "Authorization": f"Bearer {lone.buyer_token}",
            "Idempotency-Key": "huge",
            "Content-Type": "application/json",
        },
    )
    assert (huge.status_code, huge.json()["error"]) == (413, "payload_too_large")
    assert await lone.counts() == before, "no refused request changed anything"
    statuses = await lone.pool.fetch("select status from orders")
    assert [row["status"] for row in statuses] == ["awaiting_funds"]


async def test_poisoned_wallet_records_are_dead_lettered_with_a_reason_and_the_stream_goes_on(lone: Lone) -> None:
    # An ad account whose id is the buyer's Business Center's, under another Business Center: it
    # must never move the owner to another tenant (issue 12). A record with a NUL byte in an id
    # never decodes. The good records after them are applied.
    other_bc, good_account = unique("bc"), unique("acc")
    await lone.as_wallet(
        AdAccountOpened(
            ad_account_id=lone.buyer_bc,
            business_center_id=other_bc,
            type="auction",
            billing_option="prepaid",
            currency="USD",
            draws_on_business_center=False,
            opened_at=lone.clock.now(),
        ),
        key=lone.buyer_bc,
    )
    poison = encode(
        BusinessCenterOpened(
            business_center_id="placeholder", currency="USD", credit_limit_micros=0, opened_at=lone.clock.now()
        ),
        key="nul",
        trace_id="test-wallet",
    )
    value = poison.value.replace(b'"placeholder"', b'"bc\\u0000nul"')
    await produce(lone.stack.kafka_bootstrap_servers, lone.wallet_events, [(b"nul", value, list(poison.headers))])
    await lone.as_wallet(
        AdAccountOpened(
            ad_account_id=good_account,
            business_center_id=lone.buyer_bc,
            type="auction",
            billing_option="prepaid",
            currency="USD",
            draws_on_business_center=False,
            opened_at=lone.clock.now(),
        ),
        key=good_account,
    )
    assert (await lone.knows(good_account))["business_center_id"] == lone.buyer_bc, "the stream went on"
    known = await lone.knows(lone.buyer_bc)
    assert (known["kind"], known["business_center_id"]) == ("business_center", lone.buyer_bc), "the first stays"

    dead = await read_all(lone.stack.kafka_bootstrap_servers, lone.wallet_events + ".dlq", expect=2, timeout_s=30)
    reasons = {record.key: record.headers["dlq-reason"] for record in dead}
    assert set(reasons) == {lone.buyer_bc.encode(), b"nul"}
    assert "OwnerConflictError" in reasons[lone.buyer_bc.encode()] and lone.buyer_bc in reasons[lone.buyer_bc.encode()]
    assert reasons[b"nul"], "a reason for the record that did not decode"

    # The buyer still buys for their own Business Center, and the wallet's answer moves the order on.
    placed = await lone.place(lone.buyer_token, lone.buyer_bc)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    await lone.as_wallet(
        HoldPlaced(
            hold_id=order_id,
            owner_id=lone.buyer_bc,
            requested_micros=USD,
            held_micros=USD,
            currency="USD",
            requested_by="order_escrow",
            placed_at=lone.clock.now(),
        ),
        key=lone.buyer_bc,
    )

    async def awaiting_seller() -> bool:
        answer = await lone.call("GET", f"/v1/orders/{order_id}", lone.buyer_token)
        return bool(answer.json()["status"] == "awaiting_seller")

    await until(awaiting_seller, "the order awaiting the seller after the wallet's HoldPlaced", timeout_s=30)
    commands = await read_all(lone.stack.kafka_bootstrap_servers, lone.wallet_commands, expect=1, timeout_s=30)
    holds = [json.loads(record.value or b"{}") for record in commands if record.headers["event-type"] == "PlaceHold"]
    assert [(hold["hold_id"], hold["owner_id"]) for hold in holds] == [(order_id, lone.buyer_bc)]
