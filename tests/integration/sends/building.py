"""How a sends service is built and given money to spend, shared by the sends tests' worlds
(`conftest.py`) and the fuzzing world (`tests/integration/fuzz/worlds.py`)."""

from __future__ import annotations

from typing import Any

import httpx
from adledger_sends.config import Settings as SendsSettings

from ..conftest import Stack, unique
from ..waits import free_port


def sends_settings(stack: Stack, *, ledger_schema: str, identity_topic: str, events_topic: str,
                   invoicing_commands_topic: str, **more: Any) -> SendsSettings:
    """The sends service on the stack, beside a wallet (the ledger's owner) and invoicing (which
    reads its `ChargeFundingSource` on `invoicing_commands_topic`). The schedule job effectively
    never runs by itself: tests run it after moving the clock (T1)."""
    options: dict[str, Any] = {
        "database_url": stack.database_url, "kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
        "outbox_poll_interval_ms": 100, "database_schema": unique("t_sends"), "ledger_schema": ledger_schema,
        "http_port": free_port(), "identity_events_topic": identity_topic, "kafka_consumer_group": unique("sends"),
        "events_topic": events_topic, "invoicing_commands_topic": invoicing_commands_topic,
        "schedule_poll_interval_ms": 3_600_000,
    }
    return SendsSettings(**(options | more))


async def command(client: httpx.AsyncClient, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if method != "GET":
        headers["Idempotency-Key"] = unique("key")
    return await client.request(method, path, json=body, headers=headers)


async def register_funding_source(invoicing: httpx.AsyncClient, platform: str, kind: str = "prepaid_invoice") -> str:
    """A funding source registered with invoicing (I6); a prepaid one may go negative."""
    source = unique("fs")[:40]
    body: dict[str, Any] = {"id": source, "name": f"{kind} source", "kind": kind, "currency": "USD"}
    if kind == "prepaid_invoice":
        body |= {"low_balance_contacts": ["ops@acme.example"], "accounts_payable_contact": "ap@acme.example"}
    answer = await command(invoicing, "POST", "/v1/funding-sources", platform, body)
    assert answer.status_code == 201, answer.text
    return source


async def attach_funding_source(sends: httpx.AsyncClient, platform: str, source: str, business_center_id: str,
                                kind: str = "prepaid_invoice") -> None:
    """The platform operator names the account the source serves (U1)."""
    answer = await command(sends, "POST", "/v1/funding-sources", platform,
                           {"id": source, "business_center_id": business_center_id, "kind": kind, "currency": "USD"})
    assert answer.status_code < 300, answer.text
