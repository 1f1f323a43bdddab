"""The sends journey across the services (identity replicas, sends, invoicing, the wallet's ledger):
a team with two users, one send campaign per charge setting, an integration needing approval, a
refresh, added funds, an adjustment, the day close and the card payments paid; at the end the
ledger sums to zero per currency (M3). And a forged charge command moves no money."""

from __future__ import annotations

from datetime import UTC, datetime

from adledger_contracts.sends import ChargeFundingSource
from adledger_libs.events import encode

from ..conftest import unique
from ..identity_world import PLATFORM
from ..kafka_io import produce, read_all
from ..waits import until
from .conftest import USD, SendsWorld


async def test_u1_u2_u3_u4_u5_u6_m3_a_sends_journey_across_the_services_ends_with_the_ledger_at_zero(
    world: SendsWorld,
) -> None:
    business_center, admin = await world.account()
    team_source = await world.funding_source(business_center, "prepaid_invoice", prepaid_micros=30 * USD)
    card = await world.funding_source(business_center, "credit_card")
    await world.ok("PUT", f"/v1/business-centers/{business_center}/default-funding-source", admin.token,
                   {"funding_source_id": card})
    team = unique("team")
    await world.ok("POST", "/v1/teams", admin.token, {"id": team, "business_center_id": business_center,
                                                     "name": "Sales", "funding_source_id": team_source})
    ann, bob = await world.member(business_center, "ann"), await world.member(business_center, "bob")
    for person, mode in ((ann, "refresh"), (bob, "rollover")):
        await world.ok("PUT", f"/v1/business-centers/{business_center}/user-balances/{person.user_id}", admin.token,
                       {"team_id": team, "budget_micros": 20 * USD, "mode": mode, "schedule": "monthly"})
    campaigns = {}
    for name, body in {
        "balance": {"charge_to": "user_balance"},
        "source": {"charge_to": "funding_source", "funding_source_id": team_source},
        "card": {"charge_to": "funding_source", "funding_source_id": card, "require_approval": True},
    }.items():
        campaigns[name] = unique(name)
        await world.ok("POST", "/v1/send-campaigns", admin.token,
                       {"id": campaigns[name], "business_center_id": business_center, "name": name, **body})

    def send(campaign: str, price: int, **more: object) -> dict[str, object]:
        return {"campaign_id": campaign, "item_kind": "item", "description": "Hoodie", "price_micros": price, **more}

    # U2: Ann's balance covers 15, not 30.
    hoodie = await world.ok("POST", "/v1/sends", ann.token, send(campaigns["balance"], 15 * USD))
    short = await world.call("POST", "/v1/sends", ann.token, send(campaigns["balance"], 30 * USD))
    assert short.json()["error"] == "insufficient_user_balance"
    # U3: the team source (30 prepaid, 40 charged by the initial budgets: -10) is short; Bob adds funds.
    assert (await world.call("POST", "/v1/sends", bob.token, send(campaigns["source"], 8 * USD))).json()["error"] == (
        "insufficient_funds"
    )
    await world.ok("POST", "/v1/sends", bob.token, send(campaigns["source"], 8 * USD, add_funds=True))
    # U4: an integration's send on the card campaign waits, then is charged once approved.
    crm = await world.integration(business_center)
    waiting = await world.ok("POST", "/v1/sends", crm.token, send(campaigns["card"], 12 * USD))
    assert waiting["state"] == "awaiting_approval"
    await world.ok("POST", f"/v1/sends/{waiting['id']}/approve", admin.token)
    # U5: the hoodie's final cost is 17: 2 more, charged to Ann's team source.
    await world.ok("POST", f"/v1/sends/{hoodie['id']}/final-cost", PLATFORM, {"final_cost_micros": 17 * USD})
    await world.source_balance_until(team_source, (30 - 40 - 8 - 2) * USD)

    # A forged ChargeFundingSource (not signed by the sends service) is dead-lettered; no money moves.
    forged = ChargeFundingSource(
        charge_id=unique("forged")[:40], funding_source_id=team_source, amount_micros=1_000 * USD, currency="USD",
        description="free money", requested_by="sends", idempotency_key=unique("forged"),
    )
    envelope = encode(forged, key=team_source, trace_id="forged")
    bootstrap = world.billing.stack.kafka_bootstrap_servers
    commands = world.billing.invoicing_commands_topic
    await produce(bootstrap, commands, [(envelope.key, envelope.value, list(envelope.headers))])

    async def dead_lettered() -> bool:
        records = await read_all(bootstrap, commands + ".dlq", expect=0, settle_s=0.2)
        return any(r.key is not None and r.key.decode() == team_source for r in records)

    await until(dead_lettered, "the forged charge dead-lettered")
    assert await world.source_balance(team_source) == -20 * USD

    # U6, T1: two months turn (December 1st, January 1st), each period once: Ann's refresh charges the 15 she
    # used (the adjustment went to the team source, not her balance), then nothing; Bob's rollover adds 20 twice.
    world.billing.clock.set(datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC))
    await world.service.schedules.run()
    ann_balance = await world.balance(business_center, ann.user_id, ann.token)
    bob_balance = await world.balance(business_center, bob.user_id, bob.token)
    assert (ann_balance["balance_micros"], bob_balance["balance_micros"]) == (20 * USD, 60 * USD)

    # Money in: the added funds invoice, the day close of the negative rest and every card payment are paid.
    for invoice in await world.invoices_of(team_source):
        if invoice["purpose"] == "funding_source_top_up" and invoice["id"].startswith("add-funds"):
            await world.billing.provider(invoice["id"], "pay")
    await world.billing.service.jobs.run_day_closes()
    for invoice in await world.invoices_of(team_source):
        if invoice["id"].startswith("day-close"):
            await world.billing.provider(invoice["id"], "pay")
    assert await world.billing.service.jobs.collect_card_payments() >= 1
    await world.source_balance_until(card, 0)

    async def balanced() -> bool:
        return all(total == 0 for total in (await world.ledger_sums()).values())

    await until(balanced, "the ledger sums to zero per currency")
