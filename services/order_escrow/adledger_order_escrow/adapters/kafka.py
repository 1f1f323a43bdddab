"""The order-escrow service's Kafka input: the wallet's answers on `wallet.events.v1` to the
holds it asked for (HoldPlaced, HoldRejected, HoldResolved with requested_by == "order_escrow").
Answers to other services, and answers about holds this service does not know (another
environment's orders on a shared topic), are skipped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from adledger_contracts.wallet import HoldPlaced, HoldRejected, HoldResolved
from adledger_libs.consumer import Inbound, Subscription
from adledger_libs.outbox import UnitOfWork
from adledger_order_escrow.core import WALLET_EVENTS_TOPIC, OrderEscrow


def subscriptions(escrow: OrderEscrow, *, topic: str = WALLET_EVENTS_TOPIC) -> list[Subscription]:
    def apply_each(handler: Callable[[UnitOfWork, Any], Awaitable[None]]) -> Callable[[UnitOfWork, list[Inbound[Any]]], Awaitable[None]]:
        async def handle(uow: UnitOfWork, batch: list[Inbound[Any]]) -> None:
            for inbound in batch:
                await handler(uow, inbound.message)

        return handle

    return [
        Subscription(topic=topic, model=HoldPlaced, handler=apply_each(escrow.hold_placed)),
        Subscription(topic=topic, model=HoldRejected, handler=apply_each(escrow.hold_rejected)),
        Subscription(topic=topic, model=HoldResolved, handler=apply_each(escrow.hold_resolved)),
    ]
