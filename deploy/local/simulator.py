"""A built-in ad-server simulator for `make run`.

It sets up a few Business Centers and ad accounts through the wallet's API, funds them the way a
customer would (a top-up invoice from the invoicing service, paid through its local payment
provider, whose signed webhooks make the wallet credit the money), creates campaigns through the
campaign service (drawdown ones, one with a small budget, and one prepaid campaign that books its
budget as a hold), then serves ads as an ad server does, through the ad servers' client
(`adledger-client`, clients/python): spend on `ads.spend.v1` with its `SpendPublisher` (some of it
charges whose final cost follows, rule S6), serving only what its `DeliveryGate` allows (a paused
account or campaign stops serving, a resumed one serves again), balances from its
`BalanceSubscriber`. When a Business Center has been paused for lack of funds a while, its finance
person tops it up again (a few times), so delivery resumes by itself. It logs what it does, so a
newcomer watches balances fall, delivery pause and resume.

Sends (U1-U6): an account with a team of two users (one balance that refreshes daily, one that
rolls over), one send campaign per charge setting, and an integration (an API key scoped to sends)
whose sends need an Admin's approval; it logs the initial budgets charged to the team's prepaid
source, a short send refused, add-funds creating an invoice, an approval's card payment and an
adjustment charge (docs/sends-walkthrough.md is the same by hand).

It speaks only the public contract (HTTP APIs, ads.spend.v1, delivery.state.v1, delivery.control.v1,
balances.v1), as a real ad server and a real customer would. Run alone: `.venv/bin/python deploy/local/simulator.py`.
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
from adledger_client import (
    Balance, BalanceSubscriber, DeliveryChange, DeliveryGate, SpendEvent, SpendNotPublishedError, SpendPublisher,
    sasl_scram_options,
)

BOOTSTRAP = os.environ.get("ADLEDGER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")


def _kafka_options() -> dict[str, object]:
    """On the secure broker the simulator is an ad server: principal `adserver` (set by run_all)."""
    if not os.environ.get("ADLEDGER_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").startswith("SASL_"):
        return {}
    with open(os.environ["ADLEDGER_KAFKA_SASL_PASSWORD_FILE"]) as password:
        return sasl_scram_options(os.environ.get("ADLEDGER_KAFKA_SASL_USERNAME", "adserver"), password.read().strip())


KAFKA_OPTIONS = _kafka_options()
WALLET = os.environ.get("ADLEDGER_SIMULATOR_WALLET_URL", "http://127.0.0.1:8081")
CAMPAIGN = os.environ.get("ADLEDGER_SIMULATOR_CAMPAIGN_URL", "http://127.0.0.1:8082")
INVOICING = os.environ.get("ADLEDGER_SIMULATOR_INVOICING_URL", "http://127.0.0.1:8083")
IDENTITY = os.environ.get("ADLEDGER_SIMULATOR_IDENTITY_URL", "http://127.0.0.1:8086")
SENDS = os.environ.get("ADLEDGER_SIMULATOR_SENDS_URL", "http://127.0.0.1:8087")
#: How long a Business Center stays paused for lack of funds before its finance person tops it up.
TOP_UP_AFTER_S = float(os.environ.get("ADLEDGER_SIMULATOR_TOP_UP_AFTER_S", "20"))
TOP_UPS_PER_OWNER = 3
#: How long the simulator waits for a service to learn, from the wallet's events, what it set up.
SETTLE_S = 60.0
PLATFORM_TOKEN = os.environ.get("ADLEDGER_PLATFORM_TOKEN", "local-platform-token")
EVENTS_PER_SECOND = int(os.environ.get("ADLEDGER_SIMULATOR_EVENTS_PER_SECOND", "20"))
RUN_ID = os.environ.get("ADLEDGER_SIMULATOR_RUN_ID", datetime.now(UTC).strftime("%H%M%S"))
USD = 1_000_000


@dataclass
class Account:
    id: str
    business_center_id: str
    campaigns: list[str] = field(default_factory=list)
    #: The owner whose money it spends: its Business Center with ABA, else itself (W7).
    funded_by: str = ""


def usd(micros: int) -> str:
    """Micros as dollars and cents for a log line, in integers (rule M1)."""
    whole, rest = divmod(abs(micros), USD)
    return f"{'-' if micros < 0 else ''}{whole}.{rest // 10_000:02d} USD"


def say(message: str) -> None:
    print(f"{datetime.now(UTC).strftime('%H:%M:%S')} {message}", flush=True)


def _key(method: str, path: str, body: dict[str, object] | None) -> str:
    """One key per distinct request of this run, so a retried set-up step applies once (M5)."""
    return hashlib.sha256(f"{RUN_ID} {method} {path} {json.dumps(body, sort_keys=True)}".encode()).hexdigest()


async def command(
    client: httpx.AsyncClient, method: str, path: str, token: str, body: dict[str, object] | None = None,
    *, base: str = WALLET, key: str | None = None,
) -> dict[str, object]:
    answer = await client.request(
        method, base + path, json=body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key or _key(method, base + path, body)},
    )
    if answer.status_code >= 400:
        raise RuntimeError(f"{method} {base}{path}: {answer.status_code} {answer.text}")
    return dict(answer.json())


async def settled(client: httpx.AsyncClient, method: str, path: str, token: str, body: dict[str, object] | None = None, *, base: str) -> dict[str, object]:
    """A command to a service that learns Business Centers and ad accounts from the wallet's
    events: until it has read them it answers 404, so try again for a bounded time."""
    deadline = asyncio.get_running_loop().time() + SETTLE_S
    while True:
        try:
            return await command(client, method, path, token, body, base=base)
        except RuntimeError as error:
            if ": 404 " not in str(error) or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def set_up(client: httpx.AsyncClient) -> list[Account]:
    """Two Business Centers: one with ABA (three accounts share its money), one manual."""
    user = f"sim-admin-{RUN_ID}"
    # One person of the platform's one identity, signed in once: one token for every service.
    password = f"simulated-{uuid.uuid4().hex}"
    await command(client, "POST", "/v1/users", PLATFORM_TOKEN, {"id": user, "name": "Simulator admin", "password": password},
                  base=IDENTITY)
    signed_in = await client.post(f"{IDENTITY}/v1/sessions", json={"user_id": user, "password": password})
    signed_in.raise_for_status()
    token = str(signed_in.json()["token"])
    # The campaign service knows the platform's one identity: the platform operator runs the simulated campaigns.
    campaign_token = PLATFORM_TOKEN
    accounts: list[Account] = []
    for index, (aba, funds_micros) in enumerate(((True, 6 * USD), (False, 3 * USD))):
        bc = f"sim-bc{index + 1}-{RUN_ID}"
        await command(client, "POST", "/v1/business-centers", PLATFORM_TOKEN, {"id": bc, "name": f"Simulated BC {index + 1}", "currency": "USD", "admin_user_id": user})
        bc_accounts = []
        for number in range(3 if aba else 2):
            account = f"{bc}-acct{number + 1}"
            # The Admin role reaches the wallet from the identity service a moment after the opening.
            await settled(client, "POST", f"/v1/business-centers/{bc}/ad-accounts", token, {"id": account, "name": account, "type": "auction", "billing_option": "monthly_invoicing"}, base=WALLET)
            bc_accounts.append(Account(account, bc, funded_by=bc if aba else account))
        if aba:
            await settled(client, "POST", f"/v1/business-centers/{bc}/aba", token, base=WALLET)
        for owner in sorted({account.funded_by for account in bc_accounts}):
            await top_up(client, owner, funds_micros)
        if aba:
            await set_caps_after_budget_sync(client, campaign_token, bc_accounts)
        for account in bc_accounts:
            # A drawdown campaign with a small lifetime budget pauses on its own (S3); the others spend freely.
            budgets = (("drawdown", 1 * USD), ("drawdown", 100 * USD)) if account is bc_accounts[0] else (("drawdown", 100 * USD),)
            if not aba and account is bc_accounts[1]:
                # A prepaid campaign books its budget as a hold at activation (C1) and pauses when delivery reaches it.
                budgets = (("prepaid", 2 * USD), ("drawdown", 100 * USD))
            for number, (mode, budget_micros) in enumerate(budgets):
                campaign = await settled(
                    client, "POST", "/v1/campaigns", campaign_token,
                    {"ad_account_id": account.id, "name": f"{account.id} {mode} {number + 1}", "funding_mode": mode, "budget_micros": budget_micros},
                    base=CAMPAIGN,
                )
                activated = await command(client, "POST", f"/v1/campaigns/{campaign['id']}/activate", campaign_token, base=CAMPAIGN)
                account.campaigns.append(str(campaign["id"]))
                say(f"campaign {campaign['id']} on {account.id}: {mode}, budget {usd(budget_micros)}, {activated['status']}")
        accounts.extend(bc_accounts)
        say(f"set up {bc}: {'ABA, funds shared' if aba else 'manual allocation'}, {funds_micros // USD} USD per owner")
    return accounts


async def set_caps_after_budget_sync(client: httpx.AsyncClient, token: str, accounts: list[Account]) -> None:
    """Budget Sync (W5) gave each ABA account a cap equal to what it had before: nothing here. A
    finance person lifts those caps, but leaves the last account a small monthly one (S3)."""
    for account in accounts:
        deadline = asyncio.get_running_loop().time() + SETTLE_S
        while True:
            answer = await client.get(f"{CAMPAIGN}/v1/ad-accounts/{account.id}/budget-cap", headers={"Authorization": f"Bearer {token}"})
            if answer.status_code == 200 and answer.json().get("source") == "budget_sync":
                break
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the campaign service did not apply Budget Sync to {account.id} within {SETTLE_S:.0f} s")
            await asyncio.sleep(0.5)
        cap: dict[str, object] = {"kind": "unlimited"}
        if account is accounts[-1]:
            cap = {"kind": "monthly", "amount_micros": 2 * USD}
        await command(client, "PUT", f"/v1/ad-accounts/{account.id}/budget-cap", token, cap, base=CAMPAIGN)
        say(f"budget cap of {account.id}: {cap['kind']}{' ' + usd(int(cap['amount_micros'])) if 'amount_micros' in cap else ''}")  # type: ignore[call-overload]


async def top_up(client: httpx.AsyncClient, owner_id: str, amount_micros: int) -> None:
    """What a customer does: an active subscription (I4), a top-up invoice (I1), paid through the
    local payment provider, which notifies the invoicing service with signed webhooks (I5)."""
    await command(client, "PUT", f"/v1/subscriptions/{owner_id}", PLATFORM_TOKEN, {"status": "active"}, base=INVOICING)
    answer = await command(
        client, "POST", "/v1/top-ups", PLATFORM_TOKEN, {"owner_id": owner_id, "currency": "USD", "amount_micros": amount_micros},
        base=INVOICING, key=uuid.uuid4().hex,
    )
    invoice = dict(answer["invoice"])  # type: ignore[arg-type]
    await command(client, "POST", f"/v1/local-provider/invoices/{invoice['id']}/payments", PLATFORM_TOKEN, {"scenario": "pay"}, base=INVOICING)
    say(f"top-up of {usd(amount_micros)} for {owner_id}: invoice {invoice.get('number', invoice['id'])} paid through the local provider")


async def finance(client: httpx.AsyncClient, accounts: list[Account], paused_since: dict[str, float]) -> None:
    """An owner paused for lack of funds a while gets topped up again, a few times at most."""
    top_ups: dict[str, int] = {}
    while True:
        await asyncio.sleep(1)
        now = asyncio.get_running_loop().time()
        for owner, since in list(paused_since.items()):
            if now - since >= TOP_UP_AFTER_S and top_ups.get(owner, 0) < TOP_UPS_PER_OWNER:
                top_ups[owner] = top_ups.get(owner, 0) + 1
                del paused_since[owner]
                await top_up(client, owner, 3 * USD)


class Deliveries:
    """The gate's callback: logs every pause and resume of this run's accounts and campaigns, and
    notes when an owner was paused for lack of funds (its finance person tops it up later)."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.paused_since: dict[str, float] = {}

    def __call__(self, change: DeliveryChange) -> None:
        account = self.accounts.get(change.ad_account_id)
        if account is None:
            return  # another run's, or an account set up before this one
        if change.campaign_id is None and not change.serving and change.reason == "insufficient_funds":
            self.paused_since.setdefault(account.funded_by, asyncio.get_running_loop().time())
        target = change.campaign_id or account.id
        say(f"{'RESUME' if change.serving else 'PAUSE '} {target}: {change.reason} (cause {change.cause_event_id})")


async def publish_until_acknowledged(publisher: SpendPublisher, event: SpendEvent) -> None:
    """What an ad server does when the broker is away: publish the same event again (it keeps its
    id, so the platform takes it once) until it is acknowledged."""
    while True:
        try:
            await publisher.publish(event)
            return
        except SpendNotPublishedError as error:
            say(f"spend {event.event_id} not acknowledged ({error}); publishing it again")
            await asyncio.sleep(1)


async def serve_ads(publisher: SpendPublisher, gate: DeliveryGate, accounts: list[Account]) -> None:
    """Serve what the gate allows; one impression in ten is a charge whose final cost follows (S6)."""
    served = 0
    while True:
        account = random.choice(accounts)
        live = [campaign for campaign in account.campaigns if gate.may_serve(account.id, campaign)]
        if live:
            served += 1
            charge_id = f"{RUN_ID}-charge-{served}" if served % 10 == 0 else None
            event = publisher.event(account.id, random.choice(live), random.randint(20_000, 120_000), "USD", charge_id=charge_id)
            await publish_until_acknowledged(publisher, event)
            if charge_id is not None:
                # The final cost, known a moment later, differs by up to a fifth (in whole micros).
                await publish_until_acknowledged(publisher, event.final_cost(event.amount_micros * random.randint(80, 120) // 100))
            if served % (EVENTS_PER_SECOND * 5) == 0:
                serving = [a.id for a in accounts if any(gate.may_serve(a.id, campaign) for campaign in a.campaigns)]
                say(f"served {served} impressions so far; serving: {', '.join(serving) or 'nothing'}")
        await asyncio.sleep(1 / EVENTS_PER_SECOND)


async def watch_balances(accounts: list[Account]) -> None:
    def show(balance: Balance) -> None:
        say(f"balance {balance.owner_id}: available {usd(balance.available_micros)}, real {usd(balance.real_micros)} (v{balance.version})")

    owners = {a.id for a in accounts} | {a.business_center_id for a in accounts}
    async with BalanceSubscriber(BOOTSTRAP, owners=owners, on_balance=show, client_id=f"sim-balances-{RUN_ID}",
                                 kafka_options=KAFKA_OPTIONS):
        await asyncio.Event().wait()  # follows until the simulator stops


async def _sends_call(client: httpx.AsyncClient, method: str, path: str, token: str,
                      body: dict[str, object] | None = None) -> httpx.Response:
    return await client.request(method, SENDS + path, json=body, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": _key(method, SENDS + path, body),
    })


async def _source_balance(client: httpx.AsyncClient, source: str) -> str:
    answer = await command(client, "GET", f"/v1/funding-sources/{source}", PLATFORM_TOKEN, base=INVOICING)
    return usd(int(str(answer["balance_micros"])))


async def sends_demo(client: httpx.AsyncClient) -> None:
    """A team of two users, one send campaign per charge setting, an integration needing approval (U1-U6)."""
    bc, password = f"sim-sends-{RUN_ID}", f"simulated-{uuid.uuid4().hex}"
    admin, ann, bob, crm = (f"sim-{name}-{RUN_ID}" for name in ("sends-admin", "ann", "bob", "crm"))
    tokens: dict[str, str] = {}
    for user in (admin, ann, bob):
        await command(client, "POST", "/v1/users", PLATFORM_TOKEN, {"id": user, "name": user, "password": password},
                      base=IDENTITY)
        signed_in = await client.post(f"{IDENTITY}/v1/sessions", json={"user_id": user, "password": password})
        signed_in.raise_for_status()
        tokens[user] = str(signed_in.json()["token"])
    await command(client, "POST", "/v1/users", PLATFORM_TOKEN, {"id": crm, "name": "CRM", "kind": "integration"},
                  base=IDENTITY)
    await command(client, "POST", "/v1/business-centers", PLATFORM_TOKEN,
                  {"id": bc, "name": "Simulated sends", "currency": "USD", "admin_user_id": admin}, base=WALLET)
    for user in (ann, bob, crm):
        await settled(client, "PUT", f"/v1/business-centers/{bc}/members/{user}", tokens[admin], {"role": "operator"},
                      base=IDENTITY)
    key = await command(client, "POST", "/v1/api-keys", PLATFORM_TOKEN,
                        {"user_id": crm, "name": "CRM", "scopes": ["sends"]}, base=IDENTITY)
    tokens[crm] = str(key["token"])
    sales, card = f"sim-sales-{RUN_ID}", f"sim-card-{RUN_ID}"
    await command(client, "POST", "/v1/funding-sources", PLATFORM_TOKEN, {
        "id": sales, "name": "Sales team", "kind": "prepaid_invoice", "currency": "USD",
        "low_balance_contacts": ["ops@sim.example"], "accounts_payable_contact": "ap@sim.example"}, base=INVOICING)
    await command(client, "POST", "/v1/funding-sources", PLATFORM_TOKEN,
                  {"id": card, "name": "Corporate card", "kind": "credit_card", "currency": "USD"}, base=INVOICING)
    for source, kind in ((sales, "prepaid_invoice"), (card, "credit_card")):
        await command(client, "POST", "/v1/funding-sources", PLATFORM_TOKEN,
                      {"id": source, "business_center_id": bc, "kind": kind, "currency": "USD"}, base=SENDS)
    await settled(client, "PUT", f"/v1/business-centers/{bc}/default-funding-source", tokens[admin],
                  {"funding_source_id": card}, base=SENDS)
    team = f"sim-team-{RUN_ID}"
    await command(client, "POST", "/v1/teams", tokens[admin],
                  {"id": team, "business_center_id": bc, "name": "Sales", "funding_source_id": sales}, base=SENDS)
    for user, mode, budget in ((ann, "refresh", 50 * USD), (bob, "rollover", 20 * USD)):
        verb = "refreshes" if mode == "refresh" else "rolls over"
        balance = await settled(client, "PUT", f"/v1/business-centers/{bc}/user-balances/{user}", tokens[admin],
                                {"team_id": team, "budget_micros": budget, "mode": mode, "schedule": "daily"},
                                base=SENDS)
        say(f"sends: {user}'s user balance {usd(int(str(balance['balance_micros'])))}, {verb} daily "
            f"(next at {balance['next_period_start']}); initial budget charged to {sales} (U1, U6)")
    await asyncio.sleep(2)
    say(f"sends: the team's prepaid source {sales} is at {await _source_balance(client, sales)} (I6: alerted at once)")
    campaigns = {"balance": {"charge_to": "user_balance"},
                 "source": {"charge_to": "funding_source", "funding_source_id": sales},
                 "crm": {"charge_to": "funding_source", "funding_source_id": card, "require_approval": True}}
    for name, setting in campaigns.items():
        await command(client, "POST", "/v1/send-campaigns", tokens[admin],
                      {"id": f"sim-{name}-{RUN_ID}", "business_center_id": bc, "name": name, **setting}, base=SENDS)

    def send(campaign: str, price: int, **more: object) -> dict[str, object]:
        return {"campaign_id": f"sim-{campaign}-{RUN_ID}", "item_kind": "egift", "description": "Coffee card",
                "price_micros": price, **more}

    gift = (await _sends_call(client, "POST", "/v1/sends", tokens[ann], send("balance", 12 * USD))).json()
    say(f"sends: {ann} sent a 12.00 USD eGift from her balance: {gift['state']} (U2)")
    short = await _sends_call(client, "POST", "/v1/sends", tokens[ann], send("balance", 100 * USD))
    say(f"sends: a 100.00 USD send from her balance is refused: {short.status_code} {short.json()['error']} (U2)")
    refused = await _sends_call(client, "POST", "/v1/sends", tokens[bob], send("source", 20 * USD))
    say(f"sends: {bob}'s 20.00 USD send on the short prepaid source: {refused.json()['error']} (U3)")
    added = await _sends_call(client, "POST", "/v1/sends", tokens[bob], send("source", 20 * USD, add_funds=True))
    say(f"sends: with add-funds it is {added.json()['state']}; invoicing issues an invoice for the shortfall (U3)")
    waiting = (await _sends_call(client, "POST", "/v1/sends", tokens[crm], send("crm", 25 * USD))).json()
    say(f"sends: the CRM integration's send waits: {waiting['state']} (U4)")
    approved = await command(client, "POST", f"/v1/sends/{waiting['id']}/approve", tokens[admin], base=SENDS)
    say(f"sends: approved by the Admin: {approved['state']}, one card payment on {card} (U4, I6)")
    adjusted = await command(client, "POST", f"/v1/sends/{gift['id']}/final-cost", PLATFORM_TOKEN,
                             {"final_cost_micros": 15 * USD}, base=SENDS)
    await asyncio.sleep(2)
    say(f"sends: the eGift's final cost is 15.00 USD: {adjusted['state']}, 3.00 USD adjustment charged to the team's "
        f"source, now {await _source_balance(client, sales)} (U5)")


async def main() -> int:
    deliveries = Deliveries()
    # The gate reads delivery.state.v1 before anything is set up, then follows it and
    # delivery.control.v1, so no pause of this run is missed.
    async with DeliveryGate(
        BOOTSTRAP, on_change=deliveries, client_id=f"sim-gate-{RUN_ID}", kafka_options=KAFKA_OPTIONS
    ) as gate, SpendPublisher(
        BOOTSTRAP, client_id=f"sim-spend-{RUN_ID}", kafka_options=KAFKA_OPTIONS
    ) as publisher:
        async with httpx.AsyncClient(timeout=10) as client:
            accounts = await set_up(client)
            try:
                await sends_demo(client)
            except (RuntimeError, httpx.HTTPError, KeyError) as error:
                say(f"sends: the sends part of the simulation stopped: {error}")
            deliveries.accounts.update({account.id: account for account in accounts})
            say(f"serving ads at ~{EVENTS_PER_SECOND} spend events/s; watch balances fall, delivery pause and resume")
            await asyncio.gather(
                watch_balances(accounts), serve_ads(publisher, gate, accounts), finance(client, accounts, deliveries.paused_since),
            )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(0)
