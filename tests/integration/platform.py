"""The whole platform in one process: the wallet, the spend consumer, invoicing (with its local
payment provider and its e-mail adapter) and the campaign service, on the real Kafka and
PostgreSQL, sharing one ManualClock; each with its own schema and consumer group.

Built from the services' own test worlds, not a copy of them: `billing_world` (wallet, spend
consumer, invoicing; tests/integration/invoicing/conftest.py) and `campaign_service`
(tests/integration/campaign/test_campaign_journeys.py). The services meet on the shared topics
(`wallet.events.v1`, `wallet.commands.v1`, `balances.v1`, `invoicing.commands.v1`,
`invoicing.events.v1`, `campaign.events.v1`), every position starting at their end; spend,
posted spend and delivery decisions go on topics of the world's own, laid out like
`ads.spend.v1`, `spend.posted.v1`, `delivery.control.v1` and `delivery.state.v1`, which every
service of the world is configured to use, so what other runs publish cannot disturb a journey.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from adledger_contracts.external import SpendReported

from .campaign.test_campaign_journeys import CampaignStack, campaign_service
from .conftest import Stack, unique
from .invoicing.conftest import PLATFORM, Billing, billing_world, until
from .wallet.test_wallet_journey import RunningWallet

USD = 1_000_000


@dataclass
class Platform:
    billing: Billing
    campaigns: CampaignStack

    @property
    def clock(self) -> Any:
        return self.billing.clock

    # Owners, people and money -------------------------------------------------------------------------

    async def business_center(self) -> str:
        business_center_id, _ = await self.billing.business_center()
        return business_center_id

    async def ad_account(self, business_center_id: str, *, kind: str, billing_option: str) -> str:
        account_id = unique("acc")
        await self.billing.wallet_command(
            "POST", f"/v1/business-centers/{business_center_id}/ad-accounts", self.billing.wallet_admin_token,
            {"id": account_id, "name": "Acme", "type": kind, "billing_option": billing_option},
        )
        return account_id

    async def operate(self, business_center_id: str, account_id: str) -> None:
        """A campaign-service Operator of the Business Center, whose campaigns run on `account_id`."""
        campaigns = self.campaigns
        await campaigns.sign_in_operator(business_center_id)
        campaigns.bc, campaigns.account, campaigns.wallet_token = business_center_id, account_id, self.billing.wallet_admin_token

    async def change_budget(self, campaign_id: str, budget_micros: int) -> dict[str, Any]:
        """A budget change; while the wallet has not answered the previous hold command the
        service answers 409 campaign_state ("try again"), so it is tried again, bounded."""
        key = unique("budget")

        async def attempt() -> dict[str, Any] | None:
            answer = await self.campaigns.command("PUT", f"/v1/campaigns/{campaign_id}/budget", self.campaigns.token, {"budget_micros": budget_micros}, key=key)
            if answer.status_code == 409 and answer.json().get("error") == "campaign_state":
                return None
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        return dict(await until(attempt, f"the budget of {campaign_id} changed to {budget_micros}", timeout_s=30))

    async def set_up_people(self, business_center_id: str, account_id: str, *, billing_owner_id: str) -> str:
        """The billing owner subscribed to invoicing with a billing user, and an Operator whose
        campaigns run on the ad account; the billing user's token."""
        await self.billing.subscribe(billing_owner_id)
        billing_token = await self.billing.billing_user(billing_owner_id)
        await self.operate(business_center_id, account_id)
        return billing_token

    async def pay(self, invoice_id: str, scenario: str = "pay") -> list[str]:
        """The local provider pays the invoice: its signed webhooks reach invoicing's endpoint. It
        stands in for the payer's card processor and only a platform operator may drive it."""
        paid = await self.billing.provider(invoice_id, scenario)
        assert all(hook["status_code"] == 200 for hook in paid["webhooks"]), paid
        return [hook["answer"]["effect"] for hook in paid["webhooks"]]

    async def invoice_until(self, invoice_id: str, **expected: Any) -> dict[str, Any]:
        """An invoice read over invoicing's HTTP API, once it exists and shows `expected`."""
        last: dict[str, Any] = {}

        async def check() -> dict[str, Any] | None:
            nonlocal last
            answer = await self.billing.call(self.billing.invoicing, "GET", f"/v1/invoices/{invoice_id}", PLATFORM)
            if answer.status_code == 404:
                return None
            assert answer.status_code == 200, answer.text
            last = dict(answer.json())
            return last if all(last.get(name) == value for name, value in expected.items()) else None

        try:
            return dict(await until(check, f"invoice {invoice_id} with {expected}", timeout_s=30))
        except AssertionError as error:
            raise AssertionError(f"{error}: {last}") from None

    # Spend and what the spend consumer decided -----------------------------------------------------------

    def spend(self, account_id: str, campaign_id: str, amount_micros: int) -> SpendReported:
        return SpendReported(
            event_id=unique("spend"), ad_account_id=account_id, campaign_id=campaign_id, amount_micros=amount_micros,
            currency="USD", occurred_at=self.clock.now(),
        )

    async def send(self, *spends: SpendReported) -> None:
        await self.billing.send_spends(list(spends))

    async def spend_consumer_knows(self, account_id: str, campaign_id: str, predicate: Callable[[asyncpg.Record], bool], what: str) -> None:
        """Wait until the campaign's newest snapshot (from the campaign service) is the spend
        consumer's: spend sent before it would be judged on an older one."""

        async def check() -> bool:
            rows = await self.billing.fetch(
                f"select * from {self.billing.spend_schema}.campaigns where ad_account_id = $1 and campaign_id = $2", account_id, campaign_id
            )
            return bool(rows) and predicate(rows[0])

        await until(check, f"the spend consumer knows {what}", timeout_s=30)

    async def decisions(self, account_id: str, expect: int) -> list[dict[str, Any]]:
        """The delivery decisions about the account (delivery.control.v1 is keyed by the account)."""
        records = await self.billing.records(self.billing.control_topic, {account_id}, expect, settle_s=0.3)
        return [json.loads(record.value or b"{}") for record in records]

    async def decision_until(self, account_id: str, reason: str, count: int = 1) -> list[dict[str, Any]]:
        async def check() -> list[dict[str, Any]] | None:
            found = await self.decisions(account_id, 0)
            return found if sum(1 for item in found if item["reason"] == reason) >= count else None

        return list(await until(check, f"{count} decision(s) {reason} for {account_id}", timeout_s=30))

    async def posted(self, account_id: str, expect: int) -> list[dict[str, Any]]:
        records = await self.billing.records(self.billing.posted_topic, {account_id}, expect, settle_s=0.3)
        return [json.loads(record.value or b"{}") for record in records]


@asynccontextmanager
async def platform_world(stack: Stack, *, own_commands_topic: bool = False) -> AsyncIterator[Platform]:
    """`own_commands_topic`: invoicing reads its commands (the sends service's charges) from a topic of the world's."""
    async with billing_world(stack, own_delivery_topics=True, own_commands_topic=own_commands_topic) as billing:
        assert billing.wallet_runtime is not None
        assert billing.identity is not None
        wallet = RunningWallet(
            billing.wallet_runtime, billing.wallet, billing.clock, stack.kafka_bootstrap_servers, billing.identity,
            billing.wallet_commands_topic, billing.wallet_events_topic,
        )
        async with campaign_service(
            stack, wallet, spend_posted_topic=billing.posted_topic, delivery_control_topic=billing.control_topic,
        ) as campaigns:
            yield Platform(billing, campaigns)
