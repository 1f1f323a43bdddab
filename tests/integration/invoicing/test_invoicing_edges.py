"""The invoicing service's edges on the real stack (issues 12 and 13): tenants fenced by the
one identity's roles (W9), the platform operator's commands, the local provider that mints no money,
hostile bodies, parameters and tokens answered with typed 4xx that change nothing, the webhook's raw
body and size limit, and a card invoice collected once by two instances.

The world is the invoicing service alone, in-process, on topics of its own: the owners it knows are
published as the wallet would (`wallet.events.v1`-like topic), its callers by the world's
`TestIdentity`, so nothing another run does can reach it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from adledger_auth import tokens
from adledger_contracts.external import BalanceBuckets, BalanceChanged
from adledger_contracts.wallet import AdAccountOpened, BusinessCenterOpened
from adledger_invoicing.adapters.postgres import PostgresTransactions
from adledger_invoicing.config import Settings
from adledger_invoicing.core import ClockJobs
from adledger_invoicing.domain.invoices import Invoice
from adledger_invoicing.domain.signatures import SIGNATURE_HEADER, sign
from adledger_invoicing.inject import Service, wire
from adledger_ledger.postgres import LEDGER_MIGRATIONS
from adledger_libs.clock import ManualClock
from adledger_libs.db import create_pool, migrate
from adledger_libs.events import Event, encode
from adledger_libs.settings import UnsafeSettingsError

from ..conftest import Stack, TopicFactory, unique
from ..identity_world import PLATFORM, TestIdentity
from ..kafka_io import produce
from ..running import running
from ..waits import free_port, until

pytestmark = pytest.mark.integration
USD = 1_000_000
SECRET = "edge-webhook-secret"
MAXIMUM = 2**63 - 1


@dataclass
class World:
    stack: Stack
    clock: ManualClock
    identity: TestIdentity
    service: Service
    client: httpx.AsyncClient
    wallet_topic: str
    balances_topic: str
    keys: list[str] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return self.service.runtime.settings.schema

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        *,
        key: str | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if method != "GET":
            sent.setdefault("Idempotency-Key", key or unique("key"))
        if content is not None:
            return await self.client.request(method, path, content=content, headers=sent)
        return await self.client.request(method, path, json=body, headers=sent)

    async def _publish(self, topic: str, event: Event, key: str) -> None:
        envelope = encode(event, key=key, trace_id="edge")
        await produce(
            self.stack.kafka_bootstrap_servers, topic, [(envelope.key, envelope.value, list(envelope.headers))]
        )

    async def _known(self, owner_id: str) -> None:
        async def known() -> bool:
            return bool(
                await self.service.runtime.pool.fetchval("select true from owners where owner_id = $1", owner_id)
            )

        await until(known, f"invoicing knows {owner_id}")

    async def business_center(self) -> str:
        center = unique("bc")
        await self._publish(
            self.wallet_topic,
            BusinessCenterOpened(
                business_center_id=center,
                currency="USD",
                credit_limit_micros=0,
                opened_at=self.clock.now(),
                admin_user_id=None,
            ),
            center,
        )
        await self._known(center)
        return center

    async def ad_account(self, business_center_id: str) -> str:
        account = unique("acc")
        await self._publish(
            self.wallet_topic,
            AdAccountOpened(
                ad_account_id=account,
                business_center_id=business_center_id,
                type="auction",
                billing_option="prepaid",
                currency="USD",
                draws_on_business_center=False,
                opened_at=self.clock.now(),
            ),
            account,
        )
        await self._known(account)
        return account

    async def balance(self, owner_id: str, real_micros: int) -> None:
        await self._publish(
            self.balances_topic,
            BalanceChanged(
                owner_id=owner_id,
                owner_kind="business_center",
                currency="USD",
                real_micros=real_micros,
                virtual_micros=real_micros,
                available_micros=max(real_micros, 0),
                buckets=BalanceBuckets(cash=real_micros, credit_line=0, vouchers=0),
                version=1,
                updated_at=self.clock.now(),
            ),
            owner_id,
        )

        async def seen() -> bool:
            found = await self.service.runtime.pool.fetchval(
                "select real_micros from balances where owner_id = $1", owner_id
            )
            return bool(found == real_micros)

        await until(seen, f"invoicing sees the balance of {owner_id}")

    async def person(self, *roles: tuple[str, str]) -> str:
        """A person with (Business Center, role) pairs; their session token."""
        pool = self.service.runtime.pool
        user_id = await self.identity.user(unique("person"), replicas=[pool])
        for business_center_id, role in roles:
            await self.identity.grant(business_center_id, user_id, role, replicas=[pool])
        return self.identity.session(user_id)

    async def subscribe(self, owner_id: str) -> None:
        answer = await self.call("PUT", f"/v1/subscriptions/{owner_id}", PLATFORM, {"status": "active"})
        assert answer.status_code == 200, answer.text

    async def top_up(self, token: str, owner_id: str, amount_micros: int = USD) -> httpx.Response:
        return await self.call(
            "POST", "/v1/top-ups", token, {"owner_id": owner_id, "currency": "USD", "amount_micros": amount_micros}
        )

    async def invoice_count(self) -> int:
        return int(await self.service.runtime.pool.fetchval("select count(*) from invoices"))


async def _own_topics(stack: Stack, *names: str) -> dict[str, str]:
    factory = TopicFactory(stack.kafka_bootstrap_servers)
    created = {}
    for name in names:
        created[name] = await factory(name)
        await factory.create(created[name] + ".dlq")
    return created


def _settings(stack: Stack, identity: TestIdentity, topics: dict[str, str], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": stack.database_url,
        "kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
        "database_schema": unique("t_invoicing"),
        "ledger_schema": unique("t_ledger"),
        "http_port": free_port(),
        "kafka_consumer_group": unique("invoicing-edges"),
        "outbox_poll_interval_ms": 100,
        "identity_events_topic": identity.topic,
        "payment_webhook_secret": SECRET,
        "clock_jobs_poll_interval_ms": 3_600_000,
        "wallet_events_topic": topics["wallet"],
        "balances_topic": topics["balances"],
        "commands_topic": topics["commands"],
        "spend_posted_topic": topics["posted"],
        "events_topic": topics["events"],
    }
    return Settings(**{**values, **overrides})


@pytest_asyncio.fixture
async def world(stack: Stack) -> AsyncIterator[World]:
    clock = ManualClock(datetime(2026, 11, 21, 9, tzinfo=UTC))
    identity = await TestIdentity.create(stack, TopicFactory(stack.kafka_bootstrap_servers), clock)
    topics = await _own_topics(stack, "wallet", "balances", "commands", "posted", "events")
    settings = _settings(stack, identity, topics)
    await _migrate_ledger(stack, settings.ledger_schema)
    service = wire(settings, clock)
    async with running(
        service.runtime, stack, drop_schemas=[settings.ledger_schema], start_at_end_of=["orders.events.v1"]
    ) as client:
        await identity.replicated(service.runtime.pool)
        yield World(stack, clock, identity, service, client, topics["wallet"], topics["balances"])


async def _migrate_ledger(stack: Stack, schema: str) -> None:
    """The ledger's schema, as its one owner (the wallet, not running here) migrates it."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        await migrate(conn, schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
    finally:
        await conn.close()


def _naming(path: str, body: dict[str, Any] | None, owner_id: str) -> tuple[str, dict[str, Any] | None]:
    """A request template (`{}` where the owner goes) for one owner."""
    return path.format(owner_id), json.loads(json.dumps(body).replace("{}", owner_id)) if body else None


def _same_shape(answer: httpx.Response, *ids: str) -> tuple[int, str, str]:
    body = answer.json()
    reason = str(body["reason"])
    for value in ids:
        reason = reason.replace(value, "<id>")
    return answer.status_code, body["error"], reason


# W9: tenants fenced ---------------------------------------------------------------------------------------


async def test_w9_a_caller_with_no_role_in_a_business_center_gets_the_404_of_one_that_does_not_exist(
    world: World,
) -> None:
    center, other = await world.business_center(), await world.business_center()
    account = await world.ad_account(center)
    for owner_id in (center, account):
        await world.subscribe(owner_id)
    manager = await world.person((center, "finance_manager"))
    stranger = await world.person((other, "admin"))
    invoice = (await world.top_up(manager, account)).json()["invoice"]
    assert invoice["payer_id"] == account, "W9: an ad account is billed within its Business Center's roles"

    for owner_id in (center, account):
        for method, path, body in (
            ("GET", "/v1/owners/{}/billing", None),
            ("GET", "/v1/subscriptions/{}", None),
            ("GET", "/v1/invoices?owner_id={}", None),
            ("POST", "/v1/top-ups", {"owner_id": "{}", "currency": "USD", "amount_micros": USD}),
        ):
            foreign_path, foreign_body = _naming(path, body, owner_id)
            missing_path, missing_body = _naming(path, body, "nobody-here")
            foreign = await world.call(method, foreign_path, stranger, foreign_body)
            missing = await world.call(method, missing_path, stranger, missing_body)
            assert _same_shape(foreign, owner_id) == _same_shape(missing, "nobody-here"), (method, path)
            assert foreign.status_code == 404 and foreign.json()["error"] == "not_found"
    for suffix in ("", "/payments", "/document"):
        foreign = await world.call("GET", f"/v1/invoices/{invoice['id']}{suffix}", stranger)
        missing = await world.call("GET", f"/v1/invoices/no-such-invoice{suffix}", stranger)
        assert (
            _same_shape(foreign, invoice["id"]) == _same_shape(missing, "no-such-invoice")
            and foreign.status_code == 404
        )
    mine = await world.call("GET", "/v1/invoices", stranger)
    assert mine.status_code == 200 and mine.json() == [], (
        "a list without an owner holds only the caller's Business Centers"
    )
    assert [item["id"] for item in (await world.call("GET", "/v1/invoices", manager)).json()] == [invoice["id"]]
    assert await world.invoice_count() == 1, "the refused top-ups created nothing"


async def test_w9_an_analyst_and_an_operator_read_billing_but_only_admins_and_finance_managers_top_up(
    world: World,
) -> None:
    center = await world.business_center()
    await world.subscribe(center)
    admin = await world.person((center, "admin"))
    analyst = await world.person((center, "analyst"))
    operator = await world.person((center, "operator"))
    assert (await world.top_up(admin, center)).status_code == 201, "no finance roles set up: the Admin may"
    for token in (analyst, operator):
        refused = await world.top_up(token, center)
        assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied"), refused.text
        assert (await world.call("GET", f"/v1/owners/{center}/billing", token)).status_code == 200
    manager = await world.person((center, "finance_manager"))
    assert (await world.top_up(manager, center)).status_code == 201
    assert await world.invoice_count() == 2


async def test_subscriptions_voids_and_funding_sources_are_the_platform_operators_only(world: World) -> None:
    center = await world.business_center()
    await world.subscribe(center)
    admin = await world.person((center, "admin"))
    invoice = (await world.top_up(admin, center)).json()["invoice"]
    source = unique("fs")
    charge = {"charge_id": unique("c"), "amount_micros": USD, "currency": "USD", "description": "x"}
    for method, path, body in (
        ("PUT", f"/v1/subscriptions/{center}", {"status": "inactive"}),
        ("POST", f"/v1/invoices/{invoice['id']}/void", None),
        ("POST", f"/v1/invoices/{invoice['id']}/uncollectible", None),
        ("POST", "/v1/funding-sources", {"id": source, "name": "Sales", "kind": "prepaid_invoice", "currency": "USD"}),
        ("GET", f"/v1/funding-sources/{source}", None),
        ("POST", f"/v1/funding-sources/{source}/charges", charge),
        ("POST", f"/v1/funding-sources/{source}/top-ups", {"amount_micros": USD}),
        ("POST", f"/v1/local-provider/invoices/{invoice['id']}/payments", {"scenario": "pay"}),
    ):
        refused = await world.call(method, path, admin, body)
        assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied"), (
            method,
            path,
            refused.text,
        )
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}", admin)).json()["status"] == "open"
    assert (await world.call("GET", f"/v1/funding-sources/{source}", PLATFORM)).status_code == 404, "nothing registered"
    assert (await world.call("GET", f"/v1/subscriptions/{center}", admin)).json()["status"] == "active"


# Issue 12, finding 1: the local provider mints no money ------------------------------------------------------


async def test_issue_12_a_finance_manager_cannot_pay_their_own_invoice_through_the_local_provider(world: World) -> None:
    center = await world.business_center()
    await world.subscribe(center)
    manager = await world.person((center, "finance_manager"))
    invoice = (await world.top_up(manager, center, 5 * USD)).json()["invoice"]
    refused = await world.call(
        "POST", f"/v1/local-provider/invoices/{invoice['id']}/payments", manager, {"scenario": "pay"}
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied")
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}/payments", manager)).json() == [], (
        "no webhook was sent"
    )
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}", manager)).json()["status"] == "open"
    paid = await world.call(
        "POST", f"/v1/local-provider/invoices/{invoice['id']}/payments", PLATFORM, {"scenario": "pay"}
    )
    assert paid.status_code == 200 and [hook["answer"]["effect"] for hook in paid.json()["webhooks"]] == ["paid"]


async def test_issue_12_production_has_no_local_provider_and_refuses_to_start_with_the_default_secret(
    stack: Stack,
) -> None:
    clock = ManualClock(datetime(2026, 11, 21, 9, tzinfo=UTC))
    identity = await TestIdentity.create(stack, TopicFactory(stack.kafka_bootstrap_servers), clock)
    topics = await _own_topics(stack, "wallet", "balances", "commands", "posted", "events")
    for unsafe in (
        {"payment_webhook_secret": "local-webhook-secret"},
        {"payment_webhook_secret": ""},
        {"payment_webhook_secret": "s" * 40, "local_provider_enabled": True},
    ):
        with pytest.raises(UnsafeSettingsError):
            await wire(_settings(stack, identity, topics, profile="production", **unsafe), clock).runtime.start()
    strong = "production-webhook-secret-" + "x" * 20
    # Production reads its keys (the records it signs, issue 12) from a directory it is given.
    keys = str(Settings(profile="local").secrets_path())
    settings = _settings(stack, identity, topics, profile="production", payment_webhook_secret=strong, secrets_dir=keys)
    service = wire(settings, clock)
    assert service.local_provider is None
    async with running(
        service.runtime, stack, drop_schemas=[settings.ledger_schema], start_at_end_of=["orders.events.v1"]
    ) as client:
        await identity.replicated(service.runtime.pool)
        headers = {"Authorization": f"Bearer {PLATFORM}", "Idempotency-Key": "k-1"}
        missing = await client.post(
            "/v1/local-provider/invoices/any/payments", json={"scenario": "pay"}, headers=headers
        )
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
        assert not any("local-provider" in path for path in (await client.get("/openapi.json")).json()["paths"])
        body = json.dumps(
            {
                "id": "evt_1",
                "type": "payment.succeeded",
                "payment_id": "p",
                "invoice_id": "i",
                "amount_micros": 1,
                "currency": "USD",
            }
        ).encode()
        stamp = int(clock.now().timestamp())
        forged = await client.post(
            "/v1/payments/webhook", content=body, headers={SIGNATURE_HEADER: sign("local-webhook-secret", stamp, body)}
        )
        assert (forged.status_code, forged.json()["error"]) == (401, "signature_invalid"), (
            "the README's secret forges nothing"
        )
        signed = await client.post(
            "/v1/payments/webhook", content=body, headers={SIGNATURE_HEADER: sign(strong, stamp, body)}
        )
        assert signed.json() == {"received": True, "effect": "unknown_invoice"}


# Issue 12, finding 5, and every edge: typed 4xx that change nothing -------------------------------------------


async def test_issue_12_hostile_amounts_ids_texts_tokens_and_bodies_get_typed_4xx_and_change_nothing(
    world: World,
) -> None:
    center = await world.business_center()
    await world.subscribe(center)
    source = unique("fs")
    assert (
        await world.call(
            "POST",
            "/v1/funding-sources",
            PLATFORM,
            {"id": source, "name": "Sales", "kind": "prepaid_invoice", "currency": "USD"},
        )
    ).status_code == 201
    top_up = {"owner_id": center, "currency": "USD", "amount_micros": USD}
    charge = {"charge_id": "c-1", "amount_micros": USD, "currency": "USD", "description": "Send 7"}
    register = {"id": "fs-new", "name": "New", "kind": "prepaid_invoice", "currency": "USD"}
    cases: list[tuple[str, str, Any, int]] = []
    for amount in (2**63, 10**21, -1, 0, 1.5, "5", True, None):
        cases += [
            ("POST", "/v1/top-ups", {**top_up, "amount_micros": amount}, 422),
            ("POST", f"/v1/funding-sources/{source}/charges", {**charge, "amount_micros": amount}, 422),
            ("POST", f"/v1/funding-sources/{source}/top-ups", {"amount_micros": amount}, 422),
        ]
    cases += [
        ("POST", "/v1/top-ups", {**top_up, "amount_micros": None, "target_micros": target}, 422)
        for target in (2**63, 10**21, -1, 1.5)
    ]
    for bad in ("a\x00b", "a\x1b[31m", "a\u0085b", "", "x" * 129, "a/b", "a:b"):
        cases += [
            ("POST", "/v1/top-ups", {**top_up, "owner_id": bad}, 422),
            ("POST", f"/v1/funding-sources/{source}/charges", {**charge, "charge_id": bad}, 422),
            ("POST", "/v1/funding-sources", {**register, "id": bad}, 422),
        ]
    for bad in ("a\x00b", "a\x1bb", "", "x" * 301):
        cases += [("POST", f"/v1/funding-sources/{source}/charges", {**charge, "description": bad}, 422)]
    for bad in ("a\x00b", "a\nb", "", "x" * 201):
        cases += [("POST", "/v1/funding-sources", {**register, "name": bad}, 422)]
    for bad in ("ops\x00@acme.example", "no-at-sign", "a b@c.d"):
        cases += [
            ("POST", "/v1/funding-sources", {**register, "low_balance_contacts": [bad]}, 422),
            ("POST", "/v1/funding-sources", {**register, "accounts_payable_contact": bad}, 422),
            ("PUT", f"/v1/subscriptions/{center}", {"status": "active", "billing_email": bad}, 422),
        ]
    cases += [
        ("POST", "/v1/funding-sources", {**register, "low_balance_contacts": ["a@b.c"] * 21}, 422),
        ("POST", "/v1/funding-sources", {**register, "kind": "gift_card"}, 422),
        ("POST", "/v1/top-ups", {**top_up, "currency": "usd"}, 422),
        ("POST", "/v1/top-ups", {**top_up, "unknown_field": 1}, 422),
        ("POST", "/v1/top-ups", [top_up], 422),
        ("GET", "/v1/invoices/inv%00x", None, 422),
        ("GET", "/v1/invoices/inv%1bx", None, 422),
        ("GET", f"/v1/invoices/{'x' * 129}", None, 422),
        ("GET", "/v1/subscriptions/a%00b", None, 422),
        ("GET", "/v1/funding-sources/a%2Fb", None, 404),
        ("GET", "/v1/invoices?owner_id=a%00b", None, 422),
        ("GET", "/v1/invoices?status=lost", None, 422),
        ("POST", f"/v1/funding-sources/{'x' * 49}/charges", charge, 422),
    ]
    for method, path, body, status in cases:
        answer = await world.call(method, path, PLATFORM, body)
        assert answer.status_code == status, (method, path, body, answer.status_code, answer.text)
        assert answer.json()["error"] in {"invalid_request", "invalid_value", "not_found"}, answer.text
    # The Idempotency-Key header, the body size (before it is read) and the bearer token.
    # A C1 control character (sent as the obs-text byte 0x85: a client library refuses a NUL byte itself).
    keyed = await world.client.post(
        "/v1/top-ups", json=top_up, headers={"Authorization": f"Bearer {PLATFORM}", "Idempotency-Key": b"k\x85"}
    )
    assert (keyed.status_code, keyed.json()["error"]) == (422, "invalid_request"), keyed.text
    huge = json.dumps({**charge, "description": "x" * 70_000}).encode()
    too_large = await world.call(
        "POST",
        f"/v1/funding-sources/{source}/charges",
        PLATFORM,
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert (too_large.status_code, too_large.json()["error"]) == (413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    streamed = await world.client.post(
        f"/v1/funding-sources/{source}/charges",
        content=chunks(),
        headers={
            "Authorization": f"Bearer {PLATFORM}",
            "Idempotency-Key": "k-stream",
            "Content-Type": "application/json",
        },
    )
    assert (streamed.status_code, streamed.json()["error"]) == (413, "payload_too_large"), (
        "no Content-Length: cut while it streams"
    )
    other_key = tokens.new_signing_key()
    now = world.clock.now()
    forged = tokens.sign_session(
        other_key,
        world.identity.key_id,
        tokens.SessionClaims(
            user_id="platform", session_id="s-forged", issued_at=now, expires_at=now + timedelta(hours=1)
        ),
    )
    brief = await world.identity.user(unique("brief"), replicas=[world.service.runtime.pool])
    await world.identity.grant(center, brief, "admin", replicas=[world.service.runtime.pool])
    expiring = world.identity.session(brief, lifetime=timedelta(seconds=60))
    world.clock.advance(timedelta(seconds=61))
    for token in (None, "x" * 5000, "not-a-token", forged, expiring, PLATFORM + "x"):
        refused = await world.call("POST", "/v1/top-ups", token, top_up)
        assert (refused.status_code, refused.json()["error"]) == (401, "unauthenticated"), (token, refused.text)
    # Nothing was created or charged by any refused request.
    assert await world.invoice_count() == 0
    read = (await world.call("GET", f"/v1/funding-sources/{source}", PLATFORM)).json()
    assert read["balance_micros"] == 0
    assert (await world.call("GET", "/v1/funding-sources/fs-new", PLATFORM)).status_code == 404


async def test_i2_m1_a_target_past_the_bound_above_an_overspent_balance_and_an_overflowing_charge_are_refused(
    world: World,
) -> None:
    center = await world.business_center()
    await world.subscribe(center)
    await world.balance(center, -5 * USD)
    refused = await world.call(
        "POST", "/v1/top-ups", PLATFORM, {"owner_id": center, "currency": "USD", "target_micros": MAXIMUM}
    )
    assert (refused.status_code, refused.json()["error"]) == (422, "invalid_value"), refused.text
    source = unique("fs")
    await world.call(
        "POST",
        "/v1/funding-sources",
        PLATFORM,
        {"id": source, "name": "Sales", "kind": "prepaid_invoice", "currency": "USD"},
    )
    charge = {"amount_micros": MAXIMUM, "currency": "USD", "description": "x"}
    first = await world.call("POST", f"/v1/funding-sources/{source}/charges", PLATFORM, {**charge, "charge_id": "c-1"})
    assert first.status_code == 201 and first.json()["balance_after_micros"] == -MAXIMUM
    second = await world.call("POST", f"/v1/funding-sources/{source}/charges", PLATFORM, {**charge, "charge_id": "c-2"})
    assert (second.status_code, second.json()["error"]) == (422, "refused"), second.text
    assert (await world.call("GET", f"/v1/funding-sources/{source}", PLATFORM)).json()["balance_micros"] == -MAXIMUM
    assert await world.invoice_count() == 0


# The webhook: public, signed over its raw body, bounded ---------------------------------------------------------


async def test_i5_the_webhook_signs_the_raw_body_refuses_malformed_signatures_and_keeps_the_size_limit(
    world: World,
) -> None:
    center = await world.business_center()
    await world.subscribe(center)
    invoice = (await world.top_up(PLATFORM, center, 2 * USD)).json()["invoice"]
    stamp = int(world.clock.now().timestamp())
    payload = {
        "id": unique("evt"),
        "type": "payment.succeeded",
        "payment_id": "pay_raw",
        "invoice_id": invoice["id"],
        "amount_micros": 2 * USD,
        "currency": "USD",
        "note": "é",
    }
    raw = json.dumps(payload, indent=4, ensure_ascii=False).encode()

    async def post(body: bytes, header: str | None) -> httpx.Response:
        # As bytes: a header is any octets on the wire (`²` arrives as its UTF-8 bytes).
        headers = {SIGNATURE_HEADER: header.encode()} if header is not None else {}
        return await world.client.post("/v1/payments/webhook", content=body, headers=headers)

    for header, status, error in (
        ("t=²,v1=00", 400, "signature_malformed"),
        (f"t={'9' * 5000},v1={'0' * 64}", 400, "signature_malformed"),
        ("garbage", 400, "signature_malformed"),
        ("t=1,v1=" + "0" * 64, 401, "signature_invalid"),
        ("", 400, "signature_missing"),
    ):
        answer = await post(raw, header)
        assert (answer.status_code, answer.json()["error"]) == (status, error), (header[:40], answer.text)
    compact = json.dumps(payload, separators=(",", ":")).encode()
    assert (await post(compact, sign(SECRET, stamp, raw))).status_code == 401, (
        "the same JSON, other bytes: not what was signed"
    )
    huge = raw + b" " * 70_000
    assert (await post(huge, sign(SECRET, stamp, huge))).status_code == 413, (
        "the size limit applies to the public webhook too"
    )
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}", PLATFORM)).json()["status"] == "open"
    paid = await post(raw, sign(SECRET, stamp, raw))
    assert paid.json() == {"received": True, "effect": "paid"}, paid.text
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}", PLATFORM)).json()["status"] == "paid"


# Issue 12, finding 4: one card payment asked for once, from two instances ----------------------------------------


class GatedProvider:
    """Records each request and holds it until the gate opens, so two instances overlap."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.gate = asyncio.Event()

    async def collect(self, invoice: Invoice) -> None:
        self.asked.append(invoice.id)
        await self.gate.wait()


async def test_issue_12_two_instances_collecting_card_payments_ask_the_provider_once_per_invoice(world: World) -> None:
    source = unique("card")
    await world.call(
        "POST",
        "/v1/funding-sources",
        PLATFORM,
        {"id": source, "name": "Card", "kind": "credit_card", "currency": "USD"},
    )
    for amount in (2 * USD, 3 * USD):
        charged = await world.call(
            "POST",
            f"/v1/funding-sources/{source}/charges",
            PLATFORM,
            {"charge_id": unique("c"), "amount_micros": amount, "currency": "USD", "description": "Send"},
        )
        assert charged.status_code == 201, charged.text
    settings = world.service.runtime.settings
    pools = [
        await create_pool(settings.database_url, world.schema, application_name="edge-instance", max_size=2)
        for _ in range(2)
    ]
    try:
        provider = GatedProvider()
        instances = [
            ClockJobs(
                PostgresTransactions(lambda pool=pool: pool, lambda: None, lock_namespace=world.schema),
                world.service.invoicing,
                provider,
            )
            for pool in pools
        ]
        first = asyncio.ensure_future(instances[0].collect_card_payments())

        async def first_is_asking() -> bool:
            return len(provider.asked) >= 1

        await until(first_is_asking, "the first instance asks the provider")
        second = asyncio.ensure_future(instances[1].collect_card_payments())

        async def second_is_done_or_asking_the_same() -> bool:
            return second.done() or len(provider.asked) > len(set(provider.asked))

        await until(second_is_done_or_asking_the_same, "the second instance done, or asking again")
        provider.gate.set()
        collected = await asyncio.gather(first, second)
        assert sorted(provider.asked) == sorted(set(provider.asked)) and len(provider.asked) == 2, provider.asked
        assert sum(collected) == 2
        # Claimed and not answered (the gated provider sent no webhook): not asked again before the retry time.
        assert await instances[1].collect_card_payments() == 0
    finally:
        for pool in pools:
            await pool.close()
