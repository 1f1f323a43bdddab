"""The identity service on the real stack (issue 13): one sign-in, a session token every service
verifies locally, API keys shown once and kept hashed, roles per Business Center (W9), revocation,
expiry, rotation of the platform token, and nothing secret at rest or on the topic."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from adledger_auth import replica
from adledger_auth.callers import Authenticator, UnauthenticatedError
from adledger_contracts.wallet import BusinessCenterOpened
from adledger_identity.config import Settings
from adledger_identity.inject import wire
from adledger_libs.clock import ManualClock
from adledger_libs.consumer import TransactionalConsumer
from adledger_libs.db import LIBRARY_MIGRATIONS, create_pool, migrate
from adledger_libs.events import encode

from ..conftest import Stack, TopicFactory, unique
from ..kafka_io import produce, read_all
from ..running import running
from ..waits import free_port, until

pytestmark = pytest.mark.integration
PLATFORM = "test-platform-token-that-is-long-enough"
PASSWORD = "correct horse battery"


@dataclass
class World:
    client: httpx.AsyncClient
    clock: ManualClock
    stack: Stack
    identity_topic: str
    wallet_topic: str
    schema: str
    keys: int = 0

    async def call(self, method: str, path: str, token: str | None, body: Any = None, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if method != "GET":
            self.keys += 1
            headers["Idempotency-Key"] = key or f"k-{self.keys}-{unique('k')}"
        return await self.client.request(method, path, json=body, headers=headers)

    async def person(self, name: str, password: str = PASSWORD) -> str:
        user_id = unique(name)
        answer = await self.call("POST", "/v1/users", PLATFORM, {"id": user_id, "name": name, "password": password})
        assert answer.status_code == 201, answer.text
        return user_id

    async def sign_in(self, user_id: str, password: str = PASSWORD) -> str:
        answer = await self.client.post("/v1/sessions", json={"user_id": user_id, "password": password})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])

    async def open_business_center(self, admin_user_id: str) -> str:
        business_center = unique("bc")
        event = BusinessCenterOpened(business_center_id=business_center, currency="USD", credit_limit_micros=0,
                                     opened_at=self.clock.now(), admin_user_id=admin_user_id)
        envelope = encode(event, key=business_center, trace_id="t")
        await produce(self.stack.kafka_bootstrap_servers, self.wallet_topic, [(envelope.key, envelope.value, list(envelope.headers))])
        return business_center


async def _world(
    stack: Stack, new_topic: TopicFactory, tmp_path: Path, *, schema: str | None = None, identity_topic: str | None = None,
    keep_schema: bool = False, **overrides: Any,
) -> AsyncIterator[World]:
    identity_topic = identity_topic or await new_topic("identity", partitions=1)
    wallet_topic = await new_topic("wallet-events", partitions=1)
    schema = schema or unique("t_identity")
    settings = Settings(**{
        "profile": "local", "database_url": stack.database_url, "kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
        "database_schema": schema, "http_port": free_port(), "platform_token": PLATFORM,
        "kafka_consumer_group": unique("identity"), "identity_events_topic": identity_topic,
        "signing_keys_dir": str(tmp_path / "keys"), "outbox_poll_interval_ms": 100, "sign_in_failures_allowed": 3,
        # The one input of this world reads its own wallet topic, not the shared one.
        "wallet_events_topic": wallet_topic,
        **overrides,
    })
    clock = ManualClock(datetime(2026, 12, 3, 9, tzinfo=UTC))
    service = wire(settings, clock)
    async with running(service.runtime, stack, keep_schema=keep_schema) as client:
        yield World(client, clock, stack, identity_topic, wallet_topic, schema)


@pytest_asyncio.fixture
async def world(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> AsyncIterator[World]:
    async for created in _world(stack, new_topic, tmp_path):
        yield created


async def test_one_sign_in_gives_a_session_token_that_expires_and_can_be_ended(world: World) -> None:
    alice = await world.person("alice")
    token = await world.sign_in(alice)
    me = await world.call("GET", "/v1/users/me", token)
    assert me.status_code == 200 and me.json()["id"] == alice and me.json()["kind"] == "person"
    # Sign-out ends this session everywhere; a new sign-in works.
    assert (await world.call("DELETE", "/v1/sessions/current", token)).json() == {"sessions_ended": 1}
    refused = await world.call("GET", "/v1/users/me", token)
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthenticated")
    token = await world.sign_in(alice)
    assert (await world.call("GET", "/v1/users/me", token)).status_code == 200
    # Tokens expire (T1: the injected clock).
    world.clock.advance(timedelta(hours=1))
    expired = await world.call("GET", "/v1/users/me", token)
    assert expired.status_code == 401 and "expired" in expired.json()["reason"]


async def test_wrong_passwords_are_one_answer_and_the_brake_stops_guessing(world: World) -> None:
    alice = await world.person("alice")
    for user_id in (alice, alice, "nobody"):
        wrong = await world.client.post("/v1/sessions", json={"user_id": user_id, "password": "not the password"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "sign_in_refused"), "no hint who exists"
    await world.client.post("/v1/sessions", json={"user_id": alice, "password": "not the password either"})
    braked = await world.client.post("/v1/sessions", json={"user_id": alice, "password": PASSWORD})
    assert (braked.status_code, braked.json()["error"]) == (429, "too_many_attempts")
    world.clock.advance(timedelta(minutes=16))
    assert await world.sign_in(alice)


async def test_w9_roles_per_business_center_from_the_wallet_admin_and_by_admins_only(world: World) -> None:
    alice, bob, eve = await world.person("alice"), await world.person("bob"), await world.person("eve")
    alice_token, bob_token, eve_token = await world.sign_in(alice), await world.sign_in(bob), await world.sign_in(eve)
    business_center = await world.open_business_center(admin_user_id=alice)

    async def roles_of(user_id: str, token: str) -> dict[str, list[str]] | None:
        answer = await world.call("GET", "/v1/users/me", token)
        return answer.json()["roles"] if answer.json()["roles"] else None

    assert await until(lambda: roles_of(alice, alice_token), "alice admin") == {business_center: ["admin"]}
    granted = await world.call("PUT", f"/v1/business-centers/{business_center}/members/{bob}", alice_token, {"role": "analyst"})
    assert granted.status_code == 200 and granted.json()["roles"] == ["analyst"]
    # An analyst cannot give roles; a user of no Business Center gets the answer of one that does not exist.
    denied = await world.call("PUT", f"/v1/business-centers/{business_center}/members/{eve}", bob_token, {"role": "admin"})
    assert (denied.status_code, denied.json()["error"]) == (403, "permission_denied")
    hidden = await world.call("GET", f"/v1/business-centers/{business_center}/members", eve_token)
    missing = await world.call("GET", f"/v1/business-centers/{unique('bc')}/members", eve_token)
    assert (hidden.status_code, hidden.json()) == (missing.status_code, {**missing.json(), "reason": hidden.json()["reason"]})
    assert hidden.status_code == 404
    members = await world.call("GET", f"/v1/business-centers/{business_center}/members", bob_token)
    assert {item["user_id"]: item["roles"] for item in members.json()} == {alice: ["admin"], bob: ["analyst"]}
    removed = await world.call("DELETE", f"/v1/business-centers/{business_center}/members/{bob}", alice_token)
    assert removed.json()["roles"] == []


async def test_api_keys_are_shown_once_kept_hashed_scoped_and_revocable(world: World, stack: Stack) -> None:
    crm = unique("crm")
    created = await world.call("POST", "/v1/users", PLATFORM, {"id": crm, "name": "CRM", "kind": "integration"})
    assert created.status_code == 201, created.text
    body = {"user_id": crm, "name": "sends from the CRM", "scopes": ["sends"]}
    issued = await world.call("POST", "/v1/api-keys", PLATFORM, body, key="issue-1")
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert token.startswith("adk_")
    again = await world.call("POST", "/v1/api-keys", PLATFORM, body, key="issue-1")
    assert again.json()["key_id"] == issued.json()["key_id"] and again.json()["token"] is None, "shown once"
    me = await world.call("GET", "/v1/users/me", token)
    assert me.status_code == 200 and me.json()["id"] == crm
    listed = await world.call("GET", f"/v1/users/{crm}/api-keys", PLATFORM)
    assert [item["scopes"] for item in listed.json()] == [["sends"]] and "token" not in listed.json()[0]
    revoked = await world.call("DELETE", f"/v1/api-keys/{issued.json()['key_id']}", PLATFORM)
    assert revoked.json()["revoked"] is True
    assert (await world.call("GET", "/v1/users/me", token)).status_code == 401

    # Nothing secret at rest: no key, no password, no session token in the service's tables or on the topic.
    alice = await world.person("alice")
    session = await world.sign_in(alice)
    conn = await asyncpg.connect(stack.database_url)
    try:
        dump = json.dumps([dict(row) for row in await conn.fetch(f"select * from {world.schema}.idempotent_requests")], default=str)
        dump += json.dumps([dict(row) for row in await conn.fetch(f"select * from {world.schema}.credentials")], default=str)
    finally:
        await conn.close()
    records = await read_all(stack.kafka_bootstrap_servers, world.identity_topic, expect=1)
    on_topic = b"".join(record.value or b"" for record in records).decode()
    for secret in (token, PASSWORD, session, PLATFORM):
        assert secret not in dump and secret not in on_topic, "a credential is stored or published in clear"


async def test_the_platform_token_rotates_and_the_old_one_is_refused_by_every_replica(
    stack: Stack, new_topic: TopicFactory, tmp_path: Path
) -> None:
    schema = unique("t_identity")
    async for world in _world(stack, new_topic, tmp_path, schema=schema, keep_schema=True):
        assert (await world.call("GET", "/v1/users/me", PLATFORM)).status_code == 200
        identity_topic = world.identity_topic
    # Another service's replica of the same topic (any service that verifies callers).
    replica_schema = unique("t_replica")
    pool = await create_pool(stack.database_url, replica_schema, application_name="tests")
    conn = await asyncpg.connect(stack.database_url)
    await migrate(conn, replica_schema, [("adledger_libs", LIBRARY_MIGRATIONS)])
    consumer = TransactionalConsumer(pool, bootstrap_servers=stack.kafka_bootstrap_servers, group_id=unique("replica"),
                                     subscriptions=replica.subscriptions(identity_topic))
    await consumer.start()
    clock = ManualClock(datetime(2026, 12, 3, 9, tzinfo=UTC))
    authenticator = Authenticator(lambda: pool, clock)
    rotated = "a-rotated-platform-token-long-enough-for-production"
    try:
        async def accepts(token: str) -> bool:
            await consumer.poll_once()
            try:
                await authenticator.authenticate(token)
                return True
            except UnauthenticatedError:
                return False

        await until(lambda: accepts(PLATFORM), "the replica accepts the platform token")
        async for world in _world(stack, new_topic, tmp_path, schema=schema, identity_topic=identity_topic,
                                  platform_token=rotated):
            assert (await world.call("GET", "/v1/users/me", rotated)).status_code == 200
            assert (await world.call("GET", "/v1/users/me", PLATFORM)).status_code == 401

            async def rotated_there() -> bool:
                return await accepts(rotated) and not await accepts(PLATFORM)

            await until(rotated_there, "the replica refuses the old token and accepts the new one")
    finally:
        await consumer.stop()
        await pool.close()
        await conn.execute(f"drop schema if exists {replica_schema} cascade")
        await conn.close()
