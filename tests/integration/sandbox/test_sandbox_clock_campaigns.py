"""The sandbox test clock (issue 17, T1) moving campaigns and caps through HTTP only: a C3 credit 48 hours
after a campaign's end, a C4 month-end credit of a paused campaign, a W10 cap change accepted the next UTC
day, and a W13 day-close snapshot — each once, at its own time, and still once across a restart of the
campaign service in the middle of an advance."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from adledger_libs.clock import utc_month_ends_at

from ..conftest import Stack, TopicFactory, unique
from ..kafka_io import read_all
from ..waits import until
from .world import PLATFORM, USD, SandboxWorld, anchor_at, sandbox_world

pytestmark = pytest.mark.integration
H48 = timedelta(hours=48)


@dataclass
class Advertiser:
    world: SandboxWorld
    admin: str
    token: str
    business_center: str
    account: str

    async def session(self) -> str:
        self.token = await self.world.sign_in(self.admin)
        return self.token

    async def campaign(self, budget_micros: int, ends_at: datetime) -> str:
        created = await self.world.ok("campaign", "POST", "/v1/campaigns", self.token, {
            "ad_account_id": self.account, "name": "Launch", "funding_mode": "prepaid", "budget_micros": budget_micros,
            "ends_at": ends_at.isoformat(),
        }, status=201, retry_404=True)
        campaign_id = str(created["id"])
        await self.world.ok("campaign", "POST", f"/v1/campaigns/{campaign_id}/activate", self.token)
        await self.campaign_until(campaign_id, status="active", booked_micros=budget_micros)
        return campaign_id

    async def campaign_until(self, campaign_id: str, **expected: Any) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            answer = await self.world.call("campaign", "GET", f"/v1/campaigns/{campaign_id}", PLATFORM)
            found = dict(answer.json()) if answer.status_code == 200 else {}
            return found if all(found.get(k) == v for k, v in expected.items()) else None

        return dict(await until(check, f"campaign {campaign_id} {expected}", timeout_s=60))

    async def snapshots(self, campaign_id: str, expect: int) -> list[dict[str, Any]]:
        records = await read_all(self.world.stack.kafka_bootstrap_servers, self.world.topics["campaign.events.v1"],
                                 expect=expect, settle_s=1.0)
        distinct = {r.headers["event-id"]: r for r in records if r.headers.get("event-type") == "CampaignChanged"}
        events = [json.loads(r.value or b"{}") for r in distinct.values()]
        return sorted((e for e in events if e["campaign_id"] == campaign_id), key=lambda e: e["version"])


@pytest_asyncio.fixture
async def advertiser(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> AsyncIterator[Advertiser]:
    # Anchored on the 10th of next month at 06:00 UTC: the month ends well after the C3 journey's 3 days.
    today = datetime.now(UTC)
    first_of_next = utc_month_ends_at(today)
    anchor = first_of_next + timedelta(days=9, hours=6)
    assert anchor > anchor_at(0, days_ahead=0)
    async with sandbox_world(
        stack, new_topic, tmp_path, services=("identity", "wallet", "invoicing", "campaign"), anchor=anchor,
    ) as world:
        admin, token = await world.person("ada")
        business_center = await world.business_center(admin)
        account = unique("acc")
        await world.ok("wallet", "POST", f"/v1/business-centers/{business_center}/ad-accounts", token, {
            "id": account, "name": "TV", "type": "reservation", "billing_option": "prepaid",
        }, status=201, retry_404=True)
        await world.top_up(account, 20 * USD)
        await world.balance_until(account, PLATFORM, real_micros=20 * USD)
        yield Advertiser(world, admin, token, business_center, account)


async def test_c3_t1_sandbox_an_underdelivery_is_credited_48_hours_after_the_end_once_across_a_restart(
    advertiser: Advertiser,
) -> None:
    world = advertiser.world
    start = await world.now()
    ends_at = start + timedelta(days=1)
    campaign_id = await advertiser.campaign(10 * USD, ends_at)
    await world.balance_until(advertiser.account, PLATFORM, virtual_micros=10 * USD)

    # One advance over the end and the credit 48 hours later (the credit's deadline is made by the end's):
    # the campaign service restarts after the first hop.
    advancing = asyncio.ensure_future(world.advance(timedelta(days=1) + H48 + timedelta(hours=3)))
    await until(lambda: _moved_past(world, start), "the first hop", timeout_s=60)
    await world.restart("campaign")
    answer = await asyncio.wait_for(advancing, 180)
    assert answer.status_code == 200, answer.text

    settled = await advertiser.campaign_until(campaign_id, settled=True, credited_micros=10 * USD, booked_micros=0)
    assert settled["status"] == "ended"
    await world.balance_until(advertiser.account, PLATFORM, real_micros=20 * USD, virtual_micros=20 * USD)
    events = await advertiser.snapshots(campaign_id, 4)
    assert [(e["status"], e["booked_micros"]) for e in events][-2:] == [("ended", 10 * USD), ("ended", 0)], events
    assert datetime.fromisoformat(events[-2]["changed_at"]) == ends_at, "the end at its own time"
    assert datetime.fromisoformat(events[-1]["changed_at"]) == ends_at + H48, "C3: credited 48 hours after the end"
    assert len([e for e in events if e["booked_micros"] == 0 and e["status"] == "ended"]) == 1, "credited once"


async def test_c4_t1_sandbox_a_paused_campaign_is_credited_at_the_end_of_the_month_once(advertiser: Advertiser) -> None:
    world = advertiser.world
    start = await world.now()
    ends_at = start + timedelta(days=2)
    campaign_id = await advertiser.campaign(6 * USD, ends_at)
    paused = await world.ok("campaign", "POST", f"/v1/campaigns/{campaign_id}/pause", advertiser.token)
    assert paused["status"] == "paused"

    await world.advanced(timedelta(days=2) + H48)
    ended = await advertiser.campaign_until(campaign_id, status="ended")
    assert ended["settled"] is False, "C4: not 48 hours after the end, but at the end of the month"
    await world.balance_until(advertiser.account, PLATFORM, virtual_micros=14 * USD)

    month_end = utc_month_ends_at(start)
    advancing = asyncio.ensure_future(world.advance(to=month_end + timedelta(hours=1)))
    await until(lambda: _moved_past(world, start + timedelta(days=4)), "the first hop", timeout_s=60)
    await world.restart("campaign")
    answer = await asyncio.wait_for(advancing, 240)
    assert answer.status_code == 200, answer.text
    await advertiser.campaign_until(campaign_id, settled=True, credited_micros=6 * USD)
    await world.balance_until(advertiser.account, PLATFORM, real_micros=20 * USD, virtual_micros=20 * USD)
    events = await advertiser.snapshots(campaign_id, 4)
    credited = [e for e in events if e["booked_micros"] == 0 and e["status"] == "ended"]
    assert len(credited) == 1 and datetime.fromisoformat(credited[0]["changed_at"]) == month_end, credited


async def test_w10_w13_t1_sandbox_the_next_utc_day_accepts_cap_changes_again_and_the_day_is_closed(
    advertiser: Advertiser,
) -> None:
    world = advertiser.world
    path = f"/v1/ad-accounts/{advertiser.account}/budget-cap"
    for amount in range(1, 11):
        await world.ok("campaign", "PUT", path, advertiser.token, {"kind": "daily", "amount_micros": amount * USD},
                       retry_404=True)
    refused = await world.call("campaign", "PUT", path, advertiser.token, {"kind": "daily", "amount_micros": 11 * USD})
    assert (refused.status_code, refused.json()["error"]) == (429, "too_many_cap_changes"), refused.text

    start = await world.now()
    midnight = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    before = await world.advance(to=midnight - timedelta(seconds=1))
    assert before.status_code == 200, before.text
    token = await advertiser.session()
    still = await world.call("campaign", "PUT", path, token, {"kind": "daily", "amount_micros": 11 * USD})
    assert still.status_code == 429, "W10: still the same UTC day"
    await world.advanced(timedelta(seconds=1))
    accepted = await world.call("campaign", "PUT", path, token, {"kind": "daily", "amount_micros": 11 * USD})
    assert accepted.status_code == 200, accepted.text

    # W13: the day that closed at that midnight has its snapshot, once.
    history = (await world.call("wallet", "GET", f"/v1/balances/{advertiser.account}/history", PLATFORM)).json()
    days = [row for row in history if row["day"] == start.date().isoformat()]
    assert len(days) == 1 and days[0]["real_micros"] == 20 * USD, history
    assert datetime.fromisoformat(days[0]["taken_at"]) == midnight, "the day closed at its own midnight"


async def _moved_past(world: SandboxWorld, moment: datetime) -> bool:
    return await world.now() > moment


async def test_i6_t1_sandbox_the_day_close_invoices_a_negative_prepaid_source_once_across_a_restart(
    advertiser: Advertiser,
) -> None:
    world = advertiser.world
    source = unique("fs")
    await world.ok("invoicing", "POST", "/v1/funding-sources", PLATFORM, {
        "id": source, "name": "Sales team", "kind": "prepaid_invoice", "currency": "USD",
        "low_balance_contacts": ["ops@acme.example"], "accounts_payable_contact": "ap@acme.example",
    }, status=201)
    charged = await world.ok("invoicing", "POST", f"/v1/funding-sources/{source}/charges", PLATFORM, {
        "charge_id": unique("adj"), "amount_micros": 7 * USD, "currency": "USD", "description": "Adjustment: send 42",
    }, status=201)
    assert charged["balance_after_micros"] == -7 * USD

    async def invoices() -> list[dict[str, Any]]:
        return list((await world.call("invoicing", "GET", f"/v1/invoices?owner_id={source}", PLATFORM)).json())

    start = await world.now()
    midnight = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    await world.advanced(midnight - start - timedelta(seconds=1))
    assert await invoices() == [], "nothing before the UTC day ends"

    advancing = asyncio.ensure_future(world.advance(timedelta(days=2)))
    await world.restart("invoicing")
    answer = await asyncio.wait_for(advancing, 180)
    assert answer.status_code == 200, answer.text
    issued = await until(invoices, "the day-close invoice", timeout_s=60)
    assert len(issued) == 1, issued
    assert (issued[0]["amount_micros"], datetime.fromisoformat(issued[0]["issued_at"])) == (7 * USD, midnight), issued
