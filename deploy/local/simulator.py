"""A built-in ad-server simulator for `make run`: it sets up a few Business Centers and ad
accounts through the wallet's API, funds them with paid invoices, then publishes realistic
spend on `ads.spend.v1` and obeys `delivery.control.v1`: a paused account or campaign stops
serving, a resumed one serves again. It logs what it does, so a newcomer watches balances
fall and delivery pause.

It speaks only the public contract (HTTP API, ads.spend.v1, delivery.control.v1, balances.v1),
as a real ad server would. Run alone: `.venv/bin/python deploy/local/simulator.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

BOOTSTRAP = os.environ.get("ADLEDGER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
WALLET = os.environ.get("ADLEDGER_SIMULATOR_WALLET_URL", "http://127.0.0.1:8081")
PLATFORM_TOKEN = os.environ.get("ADLEDGER_PLATFORM_TOKEN", "local-platform-token")
EVENTS_PER_SECOND = int(os.environ.get("ADLEDGER_SIMULATOR_EVENTS_PER_SECOND", "20"))
RUN_ID = os.environ.get("ADLEDGER_SIMULATOR_RUN_ID", datetime.now(UTC).strftime("%H%M%S"))
USD = 1_000_000


@dataclass
class Account:
    id: str
    business_center_id: str
    campaigns: list[str]
    serving: bool = True
    paused_campaigns: set[str] = field(default_factory=set)


def usd(micros: int) -> str:
    """Micros as dollars and cents for a log line, in integers (rule M1)."""
    whole, rest = divmod(abs(micros), USD)
    return f"{'-' if micros < 0 else ''}{whole}.{rest // 10_000:02d} USD"


def say(message: str) -> None:
    print(f"{datetime.now(UTC).strftime('%H:%M:%S')} {message}", flush=True)


def _key(method: str, path: str, body: dict[str, object] | None) -> str:
    """One key per distinct request of this run, so a retried set-up step applies once (M5)."""
    return hashlib.sha256(f"{RUN_ID} {method} {path} {json.dumps(body, sort_keys=True)}".encode()).hexdigest()


async def command(client: httpx.AsyncClient, method: str, path: str, token: str, body: dict[str, object] | None = None) -> dict[str, object]:
    answer = await client.request(
        method, WALLET + path, json=body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": _key(method, path, body)},
    )
    if answer.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
    return dict(answer.json())


async def set_up(client: httpx.AsyncClient, producer: AIOKafkaProducer) -> tuple[list[Account], str]:
    """Two Business Centers: one with ABA (three accounts share its money), one manual."""
    user = f"sim-admin-{RUN_ID}"
    token = str((await command(client, "POST", "/v1/users", PLATFORM_TOKEN, {"id": user, "name": "Simulator admin"}))["token"])
    accounts: list[Account] = []
    for index, (aba, funds_micros) in enumerate(((True, 6 * USD), (False, 3 * USD))):
        bc = f"sim-bc{index + 1}-{RUN_ID}"
        await command(client, "POST", "/v1/business-centers", PLATFORM_TOKEN, {"id": bc, "name": f"Simulated BC {index + 1}", "currency": "USD", "admin_user_id": user})
        for number in range(3 if aba else 2):
            account = f"{bc}-acct{number + 1}"
            await command(client, "POST", f"/v1/business-centers/{bc}/ad-accounts", token, {"id": account, "name": account, "type": "auction", "billing_option": "monthly_invoicing"})
            accounts.append(Account(account, bc, [f"{account}-cmp{c + 1}" for c in range(2)]))
        owner = bc if aba else f"{bc}-acct1"
        if aba:
            await command(client, "POST", f"/v1/business-centers/{bc}/aba", token)
        await pay(producer, owner, funds_micros)
        if not aba:
            await pay(producer, f"{bc}-acct2", funds_micros)
        say(f"set up {bc}: {'ABA, funds shared' if aba else 'manual allocation'}, {funds_micros // USD} USD per owner")
    return accounts, token


async def pay(producer: AIOKafkaProducer, owner_id: str, amount_micros: int) -> None:
    """A paid invoice, as the invoicing service would announce it."""
    value = {"event_id": str(uuid.uuid4()), "invoice_id": f"sim-inv-{uuid.uuid4().hex[:8]}", "owner_id": owner_id,
             "amount_micros": amount_micros, "currency": "USD", "paid_at": datetime.now(UTC).isoformat()}
    headers = [("event-type", b"InvoicePaid"), ("schema-version", b"1"), ("trace-id", uuid.uuid4().hex.encode())]
    await producer.send_and_wait("invoicing.events.v1", json.dumps(value).encode(), key=owner_id.encode(), headers=headers)


async def obey_delivery_control(accounts: dict[str, Account]) -> None:
    consumer = AIOKafkaConsumer("delivery.control.v1", bootstrap_servers=BOOTSTRAP, auto_offset_reset="latest", group_id=f"sim-{RUN_ID}")
    await consumer.start()
    try:
        async for record in consumer:
            decision = json.loads(record.value)
            account = accounts.get(decision["ad_account_id"])
            if account is None:
                continue
            serving = decision["action"] == "resume"
            if decision.get("campaign_id"):
                (account.paused_campaigns.discard if serving else account.paused_campaigns.add)(decision["campaign_id"])
            else:
                account.serving = serving
            target = decision.get("campaign_id") or account.id
            say(f"{'RESUME' if serving else 'PAUSE '} {target}: {decision['reason']} (cause {decision.get('cause_event_id')})")
    finally:
        await consumer.stop()


async def serve_ads(producer: AIOKafkaProducer, accounts: list[Account]) -> None:
    served = 0
    while True:
        account = random.choice(accounts)
        live = [c for c in account.campaigns if c not in account.paused_campaigns]
        if account.serving and live:
            event = {"event_id": str(uuid.uuid4()), "ad_account_id": account.id, "campaign_id": random.choice(live),
                     "amount_micros": random.randint(20_000, 120_000), "currency": "USD", "occurred_at": datetime.now(UTC).isoformat()}
            await producer.send("ads.spend.v1", json.dumps(event).encode(), key=account.id.encode())
            served += 1
            if served % (EVENTS_PER_SECOND * 5) == 0:
                say(f"served {served} impressions so far; serving: {', '.join(a.id for a in accounts if a.serving) or 'nothing'}")
        await asyncio.sleep(1 / EVENTS_PER_SECOND)


async def watch_balances(accounts: list[Account]) -> None:
    owners = {a.id for a in accounts} | {a.business_center_id for a in accounts}
    consumer = AIOKafkaConsumer("balances.v1", bootstrap_servers=BOOTSTRAP, auto_offset_reset="latest", group_id=f"sim-balances-{RUN_ID}")
    await consumer.start()
    try:
        async for record in consumer:
            balance = json.loads(record.value)
            if balance["owner_id"] in owners:
                say(f"balance {balance['owner_id']}: available {usd(balance['available_micros'])}, real {usd(balance['real_micros'])} (v{balance['version']})")
    finally:
        await consumer.stop()


async def main() -> int:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            accounts, _ = await set_up(client, producer)
        by_id = {account.id: account for account in accounts}
        say(f"serving ads at ~{EVENTS_PER_SECOND} spend events/s; watch balances fall and delivery pause")
        await asyncio.gather(obey_delivery_control(by_id), watch_balances(accounts), serve_ads(producer, accounts))
    finally:
        await producer.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(0)
