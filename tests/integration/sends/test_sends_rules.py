"""Rules U1-U6 on the real stack: the sends service, invoicing (funding sources, I6), the wallet
(the ledger's owner) and the identity's replicas, on one ManualClock (T1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ..conftest import unique
from ..identity_world import PLATFORM
from ..waits import until
from .conftest import USD, SendsWorld


async def _user_balance(world: SendsWorld, business_center: str, admin_token: str, user_id: str, **body: object
                        ) -> dict[str, object]:
    return await world.ok("PUT", f"/v1/business-centers/{business_center}/user-balances/{user_id}", admin_token, body)


async def _campaign(world: SendsWorld, business_center: str, admin_token: str, **body: object) -> str:
    campaign = unique("camp")
    await world.ok("POST", "/v1/send-campaigns", admin_token,
                   {"id": campaign, "business_center_id": business_center, "name": "Thank-you gifts", **body})
    return campaign


def _send(campaign: str, price: int, **more: object) -> dict[str, object]:
    return {"campaign_id": campaign, "item_kind": "egift", "description": "Coffee card", "price_micros": price, **more}


async def test_u1_u6_team_users_are_funded_from_the_team_source_others_from_the_default_refresh_and_rollover(
    world: SendsWorld,
) -> None:
    business_center, admin = await world.account()
    team_source = await world.funding_source(business_center, "prepaid_invoice")
    default_source = await world.funding_source(business_center, "credit_card")
    await world.ok("PUT", f"/v1/business-centers/{business_center}/default-funding-source", admin.token,
                   {"funding_source_id": default_source})
    team = unique("team")
    await world.ok("POST", "/v1/teams", admin.token,
                   {"id": team, "business_center_id": business_center, "name": "Sales", "funding_source_id": team_source})
    ann = await world.member(business_center, "ann")
    bob = await world.member(business_center, "bob")
    solo = await world.member(business_center, "solo")

    # U6: a new user's initial budget is a charge to the team's source (prepaid: may go negative, I6).
    ann_balance = await _user_balance(world, business_center, admin.token, ann.user_id, team_id=team,
                                      budget_micros=50 * USD, mode="refresh", schedule="monthly",
                                      initial_budget_micros=30 * USD)
    assert (ann_balance["balance_micros"], ann_balance["funding_source_id"]) == (30 * USD, team_source)
    await _user_balance(world, business_center, admin.token, bob.user_id, team_id=team, budget_micros=20 * USD,
                        mode="rollover", schedule="monthly")
    await world.source_balance_until(team_source, -50 * USD)
    # U1: a user with no team is funded from the default source; a card source gets one card payment per charge.
    solo_balance = await _user_balance(world, business_center, admin.token, solo.user_id, budget_micros=10 * USD,
                                       mode="refresh", schedule="monthly")
    assert solo_balance["funding_source_id"] == default_source
    cards = await world.invoices_until(default_source, 1)
    assert [(c["purpose"], c["amount_micros"], c["automatic_collection"]) for c in cards] == [
        ("card_charge", 10 * USD, True)
    ]
    # I6: the prepaid source's low-balance contact was alerted at once, per charge.
    alerts = await world.billing.fetch(
        f"select count(*) as n from {world.billing.invoicing_schema}.funding_source_charges where funding_source_id = $1",
        team_source,
    )
    assert alerts[0]["n"] == 2

    # Ann spends 12 of her 30 (a user-balance send, U2's path).
    charged = await world.call("POST", "/v1/sends", ann.token, _send(
        await _campaign(world, business_center, admin.token, charge_to="user_balance"), 12 * USD))
    assert charged.status_code == 201, charged.text

    # T1: nothing before the month turns; at it, a refresh back to the budget (charging what was used
    # up to it) and a rollover adding the budget; the period runs once.
    world.billing.clock.set(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert await world.service.schedules.run() == 0
    world.billing.clock.set(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    assert await world.service.schedules.run() >= 3
    assert await world.service.schedules.run() == 0, "each period is funded once"
    ann_after = await world.balance(business_center, ann.user_id, ann.token)
    bob_after = await world.balance(business_center, bob.user_id, admin.token)
    solo_after = await world.balance(business_center, solo.user_id, admin.token)
    assert ann_after["balance_micros"] == 50 * USD, "refresh: back to the budget"
    assert [(f["reason"], f["amount_micros"]) for f in ann_after["fundings"]] == [
        ("initial_budget", 30 * USD), ("refresh", 32 * USD)
    ]
    assert bob_after["balance_micros"] == 40 * USD, "rollover: the budget added to what was left"
    assert solo_after["balance_micros"] == 10 * USD
    assert [(f["reason"], f["amount_micros"]) for f in solo_after["fundings"]] == [
        ("initial_budget", 10 * USD), ("refresh", 0)
    ], "an unused refreshing balance charges nothing"
    await world.source_balance_until(team_source, -(30 + 20 + 32 + 20) * USD)
    # I6: the day close invoices the prepaid source's negative rest once.
    closes = await world.billing.service.jobs.run_day_closes()
    assert [(i.payer_id, i.amount_micros) for i in closes if i.payer_id == team_source] == [(team_source, 102 * USD)]
    funded = [e for e in await world.events(business_center, 7) if e["type"] == "UserBalanceFunded"]
    assert sorted((e["user_id"], e["reason"]) for e in funded) == sorted([
        (ann.user_id, "initial_budget"), (bob.user_id, "initial_budget"), (solo.user_id, "initial_budget"),
        (ann.user_id, "refresh"), (bob.user_id, "rollover"), (solo.user_id, "refresh"),
    ])


async def test_u2_a_send_the_user_balance_cannot_cover_is_refused_and_nothing_changes(world: SendsWorld) -> None:
    business_center, admin = await world.account()
    source = await world.funding_source(business_center, "prepaid_invoice")
    await world.ok("PUT", f"/v1/business-centers/{business_center}/default-funding-source", admin.token,
                   {"funding_source_id": source})
    ann = await world.member(business_center, "ann")
    await _user_balance(world, business_center, admin.token, ann.user_id, budget_micros=25 * USD, mode="refresh")
    campaign = await _campaign(world, business_center, admin.token, charge_to="user_balance")

    short = await world.call("POST", "/v1/sends", ann.token, _send(campaign, 26 * USD))
    assert (short.status_code, short.json()["error"]) == (409, "insufficient_user_balance"), short.text
    assert (await world.balance(business_center, ann.user_id, ann.token))["balance_micros"] == 25 * USD
    assert await world.billing.fetch(f"select 1 from {world.schema}.sends where campaign_id = $1", campaign) == []

    key = unique("key")
    first = await world.call("POST", "/v1/sends", ann.token, _send(campaign, 25 * USD), key=key)
    again = await world.call("POST", "/v1/sends", ann.token, _send(campaign, 25 * USD), key=key)
    assert first.status_code == 201 and again.json() == first.json(), "M5: the same key sends once"
    assert first.json()["state"] == "charged"
    assert (await world.balance(business_center, ann.user_id, ann.token))["balance_micros"] == 0
    after = await world.call("POST", "/v1/sends", ann.token, _send(campaign, 1))
    assert after.json()["error"] == "insufficient_user_balance"
    # Someone with no role in the account is told the campaign does not exist.
    stranger = await world.billing.identity.person("eve", replicas=[world.pool])  # type: ignore[union-attr]
    fenced = await world.call("POST", "/v1/sends", stranger.token, _send(campaign, 1))
    assert fenced.status_code == 404, fenced.text
    # Only an Admin sets budgets (W9).
    denied = await world.call("PUT", f"/v1/business-centers/{business_center}/user-balances/{ann.user_id}", ann.token,
                              {"budget_micros": 10**9, "mode": "refresh"})
    assert (denied.status_code, denied.json()["error"]) == (403, "permission_denied")


async def test_u3_a_short_funding_source_may_add_funds_an_invoice_or_a_card_payment_unless_opted_out(
    world: SendsWorld,
) -> None:
    business_center, admin = await world.account()
    prepaid = await world.funding_source(business_center, "prepaid_invoice", prepaid_micros=40 * USD)
    card = await world.funding_source(business_center, "credit_card")
    ann = await world.member(business_center, "ann")
    on_prepaid = await _campaign(world, business_center, admin.token, charge_to="funding_source",
                                 funding_source_id=prepaid)
    covered = await world.call("POST", "/v1/sends", ann.token, _send(on_prepaid, 30 * USD))
    assert (covered.status_code, covered.json()["state"]) == (201, "charged"), covered.text
    await world.source_balance_until(prepaid, 10 * USD)

    # Short: refused with a typed error saying funds may be added; nothing is charged.
    short = await world.call("POST", "/v1/sends", ann.token, _send(on_prepaid, 25 * USD))
    assert (short.status_code, short.json()["error"]) == (409, "insufficient_funds"), short.text
    # Adding funds: the send is charged and the prepaid source gets an invoice for the shortfall.
    added = await world.call("POST", "/v1/sends", ann.token, _send(on_prepaid, 25 * USD, add_funds=True))
    assert (added.status_code, added.json()["state"]) == (201, "charged"), added.text
    invoices = await world.invoices_until(prepaid, 2)
    [added_funds] = [i for i in invoices if i["id"].startswith("add-funds")]
    assert (added_funds["purpose"], added_funds["amount_micros"]) == ("funding_source_top_up", 15 * USD)
    await world.source_balance_until(prepaid, -15 * USD)
    await world.billing.provider(added_funds["id"], "pay")
    await world.source_balance_until(prepaid, 0)

    # A card source: adding funds is a card payment for the charge.
    on_card = await _campaign(world, business_center, admin.token, charge_to="funding_source", funding_source_id=card)
    assert (await world.call("POST", "/v1/sends", ann.token, _send(on_card, 7 * USD))).json()["error"] == (
        "insufficient_funds"
    )
    assert (await world.call("POST", "/v1/sends", ann.token, _send(on_card, 7 * USD, add_funds=True))).status_code == 201
    [card_payment] = await world.invoices_until(card, 1)
    assert (card_payment["purpose"], card_payment["amount_micros"]) == ("card_charge", 7 * USD)

    # Opted out: a short source means the send cannot be created, add-funds or not.
    opted_out = await _campaign(world, business_center, admin.token, charge_to="funding_source",
                                funding_source_id=prepaid, add_funds_allowed=False)
    for add_funds in (False, True):
        refused = await world.call("POST", "/v1/sends", ann.token, _send(opted_out, 1 * USD, add_funds=add_funds))
        assert (refused.status_code, refused.json()["error"]) == (409, "add_funds_disabled"), refused.text
    await world.source_balance_until(prepaid, 0)
    assert len(await world.invoices_of(prepaid)) == 2


async def test_u4_an_integrations_sends_use_a_funding_source_charged_when_approved_never_when_rejected(
    world: SendsWorld,
) -> None:
    business_center, admin = await world.account()
    source = await world.funding_source(business_center, "prepaid_invoice", prepaid_micros=100 * USD)
    crm = await world.integration(business_center)
    approval = await _campaign(world, business_center, admin.token, charge_to="funding_source",
                               funding_source_id=source, require_approval=True)
    no_approval = await _campaign(world, business_center, admin.token, charge_to="funding_source",
                                  funding_source_id=source, require_approval=False)
    on_balance = await _campaign(world, business_center, admin.token, charge_to="user_balance")

    refused = await world.call("POST", "/v1/sends", crm.token, _send(on_balance, USD))
    assert (refused.status_code, refused.json()["error"]) == (409, "funding_source_required"), refused.text
    waiting = [(await world.ok("POST", "/v1/sends", crm.token, _send(approval, price))) for price in (10 * USD, 20 * USD)]
    assert [(s["state"], s["via"], s["charged_micros"]) for s in waiting] == [("awaiting_approval", "integration", 0)] * 2
    # Waiting is not charged: a final cost cannot be reported for it.
    early = await world.call("POST", f"/v1/sends/{waiting[0]['id']}/final-cost", PLATFORM, {"final_cost_micros": USD})
    assert (early.status_code, early.json()["error"]) == (409, "approval_required")
    # Only an Admin approves (W9); the integration cannot approve its own send.
    denied = await world.call("POST", f"/v1/sends/{waiting[0]['id']}/approve", crm.token)
    assert denied.status_code in (403, 404), denied.text
    approved = await world.ok("POST", f"/v1/sends/{waiting[0]['id']}/approve", admin.token)
    rejected = await world.ok("POST", f"/v1/sends/{waiting[1]['id']}/reject", admin.token)
    assert (approved["state"], rejected["state"]) == ("charged", "rejected")
    twice = await world.call("POST", f"/v1/sends/{waiting[1]['id']}/approve", admin.token)
    assert (twice.status_code, twice.json()["error"]) == (409, "send_state")
    # Without require approval, each created send is charged.
    direct = await world.ok("POST", "/v1/sends", crm.token, _send(no_approval, 5 * USD))
    assert direct["state"] == "charged"
    await world.source_balance_until(source, (100 - 10 - 5) * USD)
    # A key not scoped to sends is refused.
    other = await world.integration(business_center, scopes=("billing",))
    scoped = await world.call("POST", "/v1/sends", other.token, _send(no_approval, USD))
    assert (scoped.status_code, scoped.json()["error"]) == (403, "permission_denied")
    states = [(e["send_id"], e["state"]) for e in await world.events(business_center, 5) if e["type"] == "SendChanged"]
    assert (waiting[1]["id"], "charged") not in states and (waiting[1]["id"], "rejected") in states


async def test_u5_a_higher_final_cost_is_an_adjustment_charge_to_the_team_source_a_lower_one_goes_back(
    world: SendsWorld,
) -> None:
    business_center, admin = await world.account()
    team_source = await world.funding_source(business_center, "prepaid_invoice")
    default_card = await world.funding_source(business_center, "credit_card")
    campaign_source = await world.funding_source(business_center, "prepaid_invoice", prepaid_micros=50 * USD)
    await world.ok("PUT", f"/v1/business-centers/{business_center}/default-funding-source", admin.token,
                   {"funding_source_id": default_card})
    team = unique("team")
    await world.ok("POST", "/v1/teams", admin.token, {"id": team, "business_center_id": business_center,
                                                     "name": "Sales", "funding_source_id": team_source})
    ann = await world.member(business_center, "ann")
    solo = await world.member(business_center, "solo")
    await _user_balance(world, business_center, admin.token, ann.user_id, team_id=team, budget_micros=20 * USD,
                        mode="refresh")
    await _user_balance(world, business_center, admin.token, solo.user_id, budget_micros=20 * USD, mode="refresh")
    await world.source_balance_until(team_source, -20 * USD)
    on_balance = await _campaign(world, business_center, admin.token, charge_to="user_balance")
    on_source = await _campaign(world, business_center, admin.token, charge_to="funding_source",
                                funding_source_id=campaign_source)

    # Higher: the difference is charged to the sender's team source (prepaid: negative, alerted, I6).
    gift = await world.ok("POST", "/v1/sends", ann.token, _send(on_balance, 15 * USD))
    adjusted = await world.ok("POST", f"/v1/sends/{gift['id']}/final-cost", PLATFORM, {"final_cost_micros": 18 * USD})
    assert (adjusted["state"], adjusted["charged_micros"]) == ("adjusted", 18 * USD)
    await world.source_balance_until(team_source, -23 * USD)
    assert (await world.balance(business_center, ann.user_id, ann.token))["balance_micros"] == 5 * USD
    # Without a team: the default source pays; a card source gets one card payment for the adjustment.
    item = await world.ok("POST", "/v1/sends", solo.token, _send(on_source, 10 * USD))
    await world.ok("POST", f"/v1/sends/{item['id']}/final-cost", PLATFORM, {"final_cost_micros": 14 * USD})
    cards = await world.invoices_until(default_card, 2)
    assert sorted((c["purpose"], c["amount_micros"]) for c in cards) == [("card_charge", 4 * USD), ("card_charge", 20 * USD)]
    # Lower: the difference goes back where it was charged (the user balance; the funding source).
    cheaper = await world.ok("POST", "/v1/sends", ann.token, _send(on_balance, 5 * USD))
    await world.ok("POST", f"/v1/sends/{cheaper['id']}/final-cost", PLATFORM, {"final_cost_micros": 3 * USD})
    assert (await world.balance(business_center, ann.user_id, ann.token))["balance_micros"] == 2 * USD
    lower = await world.ok("POST", "/v1/sends", solo.token, _send(on_source, 10 * USD))
    await world.ok("POST", f"/v1/sends/{lower['id']}/final-cost", PLATFORM, {"final_cost_micros": 6 * USD})
    await world.source_balance_until(campaign_source, (50 - 10 - 10 + 4) * USD)
    # Once: a second final cost is refused; only the platform reports them.
    again = await world.call("POST", f"/v1/sends/{gift['id']}/final-cost", PLATFORM, {"final_cost_micros": 30 * USD})
    assert (again.status_code, again.json()["error"]) == (409, "send_state")
    user_report = await world.call("POST", f"/v1/sends/{lower['id']}/final-cost", admin.token,
                                   {"final_cost_micros": 30 * USD})
    assert user_report.status_code == 403

    # M3: after every charge, refund and adjustment, the ledger sums to zero per currency.
    async def balanced() -> bool:
        return all(total == 0 for total in (await world.ledger_sums()).values())

    await until(balanced, "the ledger sums to zero per currency")
    world.billing.clock.advance(timedelta(seconds=1))


async def test_every_sends_edge_is_bounded_and_typed_and_moves_no_money(world: SendsWorld) -> None:
    business_center, admin = await world.account()
    source = await world.funding_source(business_center, "prepaid_invoice")
    await world.ok("PUT", f"/v1/business-centers/{business_center}/default-funding-source", admin.token,
                   {"funding_source_id": source})
    ann = await world.member(business_center, "ann")
    await _user_balance(world, business_center, admin.token, ann.user_id, budget_micros=10 * USD, mode="refresh")
    campaign = await _campaign(world, business_center, admin.token, charge_to="user_balance")
    for body, status in (
        (_send(campaign, 0), 422), (_send(campaign, -1), 422), (_send(campaign, 2**63), 422), (_send(campaign, 1.5), 422),
        ({**_send(campaign, USD), "item_kind": "car"}, 422), ({**_send(campaign, USD), "extra": 1}, 422),
        ({**_send(campaign, USD), "campaign_id": "x" * 500}, 422), (_send("no-such-campaign", USD), 404),
    ):
        answer = await world.call("POST", "/v1/sends", ann.token, body)
        assert answer.status_code == status and set(answer.json()) >= {"error", "reason"}, (body, answer.text)
    unkeyed = await world.client.post("/v1/sends", json=_send(campaign, USD), headers={"Authorization": f"Bearer {ann.token}"})
    assert (unkeyed.status_code, unkeyed.json()["error"]) == (400, "idempotency_key_required")
    anonymous = await world.client.post("/v1/sends", json=_send(campaign, USD), headers={"Idempotency-Key": "k"})
    assert anonymous.status_code == 401
    key = unique("key")
    assert (await world.call("POST", "/v1/sends", ann.token, _send(campaign, USD), key=key)).status_code == 201
    reused = await world.call("POST", "/v1/sends", ann.token, _send(campaign, 2 * USD), key=key)
    assert (reused.status_code, reused.json()["error"]) == (422, "idempotency_key_reused")
    # A campaign charging a funding source must name one of the account's; a team needs an attached source.
    bad = await world.call("POST", "/v1/send-campaigns", admin.token, {"id": unique("c"), "business_center_id": business_center,
                                                                      "name": "x", "charge_to": "funding_source"})
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_value")
    foreign = await world.call("POST", "/v1/teams", admin.token, {"id": unique("t"), "business_center_id": business_center,
                                                                 "name": "x", "funding_source_id": "not-attached"})
    assert foreign.status_code == 404
    assert (await world.balance(business_center, ann.user_id, ann.token))["balance_micros"] == 9 * USD


async def test_u1_u4_w9_an_accounts_teams_user_balances_and_waiting_sends_are_listed_to_its_people_only(
    world: SendsWorld,
) -> None:
    business_center, admin = await world.account()
    source = await world.funding_source(business_center, "prepaid_invoice", prepaid_micros=100 * USD)
    team = unique("team")
    await world.ok("POST", "/v1/teams", admin.token,
                   {"id": team, "business_center_id": business_center, "name": "Sales", "funding_source_id": source})
    analyst = await world.member(business_center, "ann", role="analyst")
    await _user_balance(world, business_center, admin.token, analyst.user_id, team_id=team, budget_micros=7 * USD,
                        mode="rollover", schedule="weekly")
    crm = await world.integration(business_center)
    campaign = await _campaign(world, business_center, admin.token, charge_to="funding_source",
                               funding_source_id=source, require_approval=True)
    first, second = [(await world.ok("POST", "/v1/sends", crm.token, _send(campaign, p)))["id"] for p in (USD, 2 * USD)]
    await world.ok("POST", f"/v1/sends/{first}/approve", admin.token)
    base = f"/v1/business-centers/{business_center}"

    teams = await world.call("GET", f"{base}/teams", analyst.token)
    assert [(t["id"], t["name"], t["funding_source_id"]) for t in teams.json()] == [(team, "Sales", source)]
    balances = (await world.call("GET", f"{base}/user-balances", admin.token)).json()
    assert [(b["user_id"], b["team_id"], b["budget_micros"], b["mode"], b["schedule"], b["balance_micros"])
            for b in balances] == [(analyst.user_id, team, 7 * USD, "rollover", "weekly", 7 * USD)]
    waiting = (await world.call("GET", f"{base}/sends?state=awaiting_approval", analyst.token)).json()
    assert [(s["id"], s["state"], s["price_micros"]) for s in waiting] == [(second, "awaiting_approval", 2 * USD)]
    every = (await world.call("GET", f"{base}/sends", admin.token)).json()
    assert sorted((s["id"], s["state"]) for s in every) == sorted([(first, "charged"), (second, "awaiting_approval")])
    one = (await world.call("GET", f"{base}/sends?limit=1", admin.token)).json()
    assert len(one) == 1 and one[0]["id"] in (first, second)
    # W9: other users' balances are the Admins'; another account's people see nothing of it; bounded, typed.
    refused = await world.call("GET", f"{base}/user-balances", analyst.token)
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied"), refused.text
    _, stranger = await world.account()
    for path in ("teams", "user-balances", "sends"):
        hidden = await world.call("GET", f"{base}/{path}", stranger.token)
        assert (hidden.status_code, hidden.json()["error"]) == (404, "not_found"), hidden.text
    for query in ("state=paid", "limit=0", "limit=201"):
        bad = await world.call("GET", f"{base}/sends?{query}", admin.token)
        assert bad.status_code == 422 and "error" in bad.json(), bad.text
