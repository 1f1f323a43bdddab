"""The campaign service's Kafka inputs, in one consumer group and one transaction per batch:

- `wallet.events.v1`: Business Centers and ad accounts opened, ABA enabled (W5 Budget Sync, W7),
  the answers to our holds (`requested_by == "campaign"`), and payments received (C1);
- `spend.posted.v1`: what the spend consumer posted per campaign (delivered totals, C3, C4, S3);
- `delivery.control.v1`: pauses and resumes for budget or funds (C5).

Records about accounts, holds or campaigns this service does not know are another
environment's on a shared topic, and are skipped. Exactly once is the TransactionalConsumer's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from adledger_contracts.external import DeliveryDecided
from adledger_contracts.spending import SpendPosted
from adledger_contracts.wallet import (
    AdAccountOpened,
    AutomaticBalanceAllocationEnabled,
    BusinessCenterOpened,
    FundsReceived,
    HoldPlaced,
    HoldRejected,
    HoldResolved,
)
from adledger_libs.consumer import Inbound, Subscription
from adledger_libs.outbox import UnitOfWork

from adledger_campaign.core import Campaigns
from adledger_campaign.ports.unit_of_work import CampaignUnitOfWork

Handler = Callable[[CampaignUnitOfWork, Any], Awaitable[None]]
BatchHandler = Callable[[UnitOfWork, list[Inbound[Any]]], Awaitable[None]]


def subscriptions(
    campaigns: Campaigns, unit: Callable[[UnitOfWork], CampaignUnitOfWork], *, wallet_topic: str, spend_topic: str,
    delivery_topic: str,
) -> list[Subscription]:
    """`unit` gives the core's unit of work over the consumer's transaction (inject.py chooses it)."""

    def apply_each(handler: Handler) -> BatchHandler:
        async def handle(uow: UnitOfWork, batch: list[Inbound[Any]]) -> None:
            work = unit(uow)
            for inbound in batch:
                await handler(work, inbound.message)

        return handle

    # Within a batch the handlers run in this order: accounts are known before their campaigns'
    # answers, a hold is placed before it is resolved, and a payment is seen after the holds.
    return [
        Subscription(
            topic=wallet_topic, model=BusinessCenterOpened, handler=apply_each(campaigns.business_center_opened)
        ),
        Subscription(topic=wallet_topic, model=AdAccountOpened, handler=apply_each(campaigns.ad_account_opened)),
        Subscription(
            topic=wallet_topic, model=AutomaticBalanceAllocationEnabled, handler=apply_each(campaigns.aba_enabled)
        ),
        Subscription(topic=wallet_topic, model=HoldPlaced, handler=apply_each(campaigns.hold_placed)),
        Subscription(topic=wallet_topic, model=HoldRejected, handler=apply_each(campaigns.hold_rejected)),
        Subscription(topic=wallet_topic, model=HoldResolved, handler=apply_each(campaigns.hold_resolved)),
        Subscription(topic=wallet_topic, model=FundsReceived, handler=apply_each(campaigns.funds_received)),
        Subscription(topic=spend_topic, model=SpendPosted, handler=apply_each(campaigns.spend_posted)),
        Subscription(topic=delivery_topic, model=DeliveryDecided, handler=apply_each(campaigns.delivery_decided)),
    ]
