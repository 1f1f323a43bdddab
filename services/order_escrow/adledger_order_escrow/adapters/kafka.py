"""The order escrow's Kafka input, all from the wallet's events (`wallet.events.v1`):
- `BusinessCenterOpened`, `AdAccountOpened`: the owners orders are placed for and paid to, and
  the Business Center whose roles (W9) decide who may spend each one's money;
- `HoldPlaced`, `HoldRejected`, `HoldResolved` with `requested_by == "order_escrow"`: the wallet's
  answers to the holds this service asked for. Answers to other services, and answers about
  holds this service does not know (another environment's orders on a shared topic), are skipped.

The identity's snapshots (`identity.events.v1`) are subscribed by the runtime (`verify_callers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from adledger_contracts.wallet import AdAccountOpened, BusinessCenterOpened, HoldPlaced, HoldRejected, HoldResolved
from adledger_libs import outbox
from adledger_libs.consumer import Inbound, Subscription
from adledger_libs.events import Message

from adledger_order_escrow.domain.parties import Owner
from adledger_order_escrow.ports.inbound import OrderEscrowPort
from adledger_order_escrow.ports.unit_of_work import UnitOfWork

M = TypeVar("M", bound=Message)
Handler = Callable[[outbox.UnitOfWork, list[Inbound[Any]]], Awaitable[None]]


def subscriptions(
    escrow: OrderEscrowPort, unit_of: Callable[[outbox.UnitOfWork], UnitOfWork], *, wallet_events_topic: str
) -> list[Subscription]:
    def each(apply: Callable[[UnitOfWork, M], Awaitable[None]]) -> Handler:
        async def handle(uow: outbox.UnitOfWork, batch: list[Inbound[Any]]) -> None:
            escrow_uow = unit_of(uow)
            for inbound in batch:
                await apply(escrow_uow, inbound.message)

        return handle

    async def business_center_opened(uow: UnitOfWork, event: BusinessCenterOpened) -> None:
        owner = Owner(event.business_center_id, "business_center", event.business_center_id, event.currency)
        await escrow.owner_opened(uow, owner, event.opened_at)

    async def ad_account_opened(uow: UnitOfWork, event: AdAccountOpened) -> None:
        owner = Owner(event.ad_account_id, "ad_account", event.business_center_id, event.currency)
        await escrow.owner_opened(uow, owner, event.opened_at)

    topic = wallet_events_topic
    return [
        Subscription(topic=topic, model=BusinessCenterOpened, handler=each(business_center_opened)),
        Subscription(topic=topic, model=AdAccountOpened, handler=each(ad_account_opened)),
        Subscription(topic=topic, model=HoldPlaced, handler=each(escrow.hold_placed)),
        Subscription(topic=topic, model=HoldRejected, handler=each(escrow.hold_rejected)),
        Subscription(topic=topic, model=HoldResolved, handler=each(escrow.hold_resolved)),
    ]
